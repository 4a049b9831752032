import pytest

from edge.signing import SignatureError, generate_key, public_key_of, sign, verify


def test_a_signature_verifies_only_for_the_same_bytes_and_key() -> None:
    private, public = generate_key()
    assert public_key_of(private) == public
    sig = sign(b"manifest v1", private)
    verify(b"manifest v1", sig, public)
    with pytest.raises(SignatureError, match="does not match"):
        verify(b"manifest v2", sig, public)
    _, other_public = generate_key()
    with pytest.raises(SignatureError, match="does not match"):
        verify(b"manifest v1", sig, other_public)


@pytest.mark.parametrize("bad", ["", "not base64!", "AAAA"])
def test_malformed_signatures_are_refused_with_a_reason(bad: str) -> None:
    _, public = generate_key()
    with pytest.raises(SignatureError):
        verify(b"x", bad, public)
