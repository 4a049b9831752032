"""Tablet enrolment: pairing codes shown by the teacher, device tokens, revocation."""
