# The cart <-> hub protocol, written once: message shapes, their limits, and the
# message authentication. The cart (MicroPython) and the hub (CPython) both load
# this file; it uses only what both have (hashlib.sha256, json).
#
# Every request from the cart carries three headers:
#   X-Cart-Id       the cart's id as enrolled on the hub
#   X-Cart-Counter  a number larger than any the hub accepted from this cart
#   X-Cart-Mac      hex HMAC-SHA256 over REQUEST_TAG, method, path, id, counter, body
# The hub's reply carries X-Cart-Mac over REPLY_TAG, id, the request's counter and
# the reply body, so a cart accepts only the answer to the request it sent.
import hashlib

VERSION = 1

HDR_ID = "X-Cart-Id"
HDR_COUNTER = "X-Cart-Counter"
HDR_MAC = "X-Cart-Mac"

REQUEST_TAG = b"cart-req-v1"
REPLY_TAG = b"cart-rep-v1"

LINK_PATH = "/api/v1/cart-link/telemetry"
FIRMWARE_PATH = "/api/v1/cart-link/firmware/"  # + <version>/<file name>

MAX_SLOTS = 64
MAX_SLOT_MA = 20000  # current sensor full scale per slot (mA)
TEMP_MIN_C = -40.0
TEMP_MAX_C = 150.0
MAX_COUNTER = (1 << 53) - 1  # exact in a JSON number and a float
MAX_FILES = 32
MAX_FILE_BYTES = 256 * 1024

MODES = ("startup", "plan", "fallback", "cutoff")
THERMAL = ("ok", "derate", "cutoff", "sensor")
OTA_STATES = ("idle", "staging", "trial", "confirmed", "rolled_back", "refused")
# Door lock commands in a reply ({op, id}) and the cart's report of the last one
# in telemetry ("ack": {id, op, result, detail?}); see cart/doorlock.py.
LOCK_OPS = ("lock", "unlock")
LOCK_RESULTS = ("done", "refused", "waiting")

# Per-slot fault codes in telemetry (0 = none).
FAULT_NONE = 0
FAULT_OVERCURRENT = 1  # slot drew more than its limit: switched off and latched
FAULT_STUCK_ON = 2  # current flows with the switch off
FAULT_SENSOR = 3  # reading outside the sensor's range

_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
_HEX = "0123456789abcdef"
_NAME_CHARS = _ID_CHARS + "_."


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104). MicroPython has no hmac module, so it is written
    here once and checked against CPython's hmac in the tests."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (block - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def to_hex(raw):
    return "".join(_HEX[b >> 4] + _HEX[b & 15] for b in raw)


def from_hex(text):
    if len(text) % 2 or any(c not in _HEX for c in text):
        raise ValueError("not lower-case hex")
    return bytes(int(text[i:i + 2], 16) for i in range(0, len(text), 2))


def equal(a, b):
    """Constant-time comparison of two strings (no early exit on a mismatch)."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= ord(a[i]) ^ ord(b[i])
    return diff == 0


def request_mac(key, method, path, cart_id, counter, body):
    msg = b"\n".join((REQUEST_TAG, method.encode(), path.encode(), cart_id.encode(), str(counter).encode(), body))
    return to_hex(hmac_sha256(key, msg))


def reply_mac(key, cart_id, counter, body):
    msg = b"\n".join((REPLY_TAG, cart_id.encode(), str(counter).encode(), body))
    return to_hex(hmac_sha256(key, msg))


def valid_cart_id(text):
    return isinstance(text, str) and 1 <= len(text) <= 32 and all(c in _ID_CHARS for c in text)


def valid_file_name(text):
    return (isinstance(text, str) and 1 <= len(text) <= 48 and text[0] != "." and
            all(c in _NAME_CHARS for c in text))


def valid_version(text):
    return isinstance(text, str) and 1 <= len(text) <= 24 and text[0] != "." and all(c in _NAME_CHARS for c in text)


def parse_counter(text):
    """The counter header as an int, or None if it is not a plain positive number."""
    if not isinstance(text, str) or not 1 <= len(text) <= 16 or any(c not in "0123456789" for c in text):
        return None
    value = int(text)
    return value if 0 < value <= MAX_COUNTER else None


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return (isinstance(v, int) or isinstance(v, float)) and not isinstance(v, bool)


def _flags(v, n):
    return isinstance(v, list) and len(v) == n and all(x == 0 or x == 1 for x in v if _is_int(x)) and all(_is_int(x) for x in v)


def check_telemetry(msg, slots=None):
    """Errors in a telemetry message (empty list = valid). ``slots``: the number of
    slots the hub has enrolled for this cart; a different count is an error."""
    errors = []
    if not isinstance(msg, dict):
        return ["telemetry must be a JSON object"]
    known = ("v", "cart", "ctr", "fw", "boot", "up", "temp", "door", "lock", "mode", "thermal", "cap", "total",
             "present", "on", "ma", "fault", "full", "ota", "ack")
    for key in msg:
        if key not in known:
            errors.append("unknown field " + str(key))
    if msg.get("v") != VERSION:
        errors.append("v must be %d" % VERSION)
    if not valid_cart_id(msg.get("cart")):
        errors.append("cart must be 1-32 of a-z 0-9 -")
    if not (_is_int(msg.get("ctr")) and 0 < msg["ctr"] <= MAX_COUNTER):
        errors.append("ctr must be a positive integer")
    if not valid_version(msg.get("fw")):
        errors.append("fw must be a version string")
    for key in ("boot", "up"):
        if not (_is_int(msg.get(key)) and 0 <= msg[key] <= MAX_COUNTER):
            errors.append(key + " must be a non-negative integer")
    temp = msg.get("temp")
    if temp is not None and not (_is_num(temp) and TEMP_MIN_C <= temp <= TEMP_MAX_C):
        errors.append("temp out of range %s..%s C" % (TEMP_MIN_C, TEMP_MAX_C))
    for key in ("door", "lock"):
        if msg.get(key) not in (0, 1) or isinstance(msg.get(key), bool):
            errors.append(key + " must be 0 or 1")
    if msg.get("mode") not in MODES:
        errors.append("mode must be one of " + ",".join(MODES))
    if msg.get("thermal") not in THERMAL:
        errors.append("thermal must be one of " + ",".join(THERMAL))
    for key in ("cap", "total"):
        if not (_is_int(msg.get(key)) and 0 <= msg[key] <= MAX_SLOT_MA * MAX_SLOTS):
            errors.append(key + " out of range")
    present = msg.get("present")
    n = len(present) if isinstance(present, list) else -1
    if not 1 <= n <= MAX_SLOTS:
        errors.append("present must list 1-%d slots" % MAX_SLOTS)
        return errors
    if slots is not None and n != slots:
        errors.append("cart reports %d slots, enrolled with %d" % (n, slots))
    for key in ("present", "on", "full"):
        if not _flags(msg.get(key), n):
            errors.append(key + " must be %d flags (0/1)" % n)
    ma = msg.get("ma")
    if not (isinstance(ma, list) and len(ma) == n and all(_is_int(x) and 0 <= x <= MAX_SLOT_MA for x in ma)):
        errors.append("ma must be %d currents in 0..%d mA" % (n, MAX_SLOT_MA))
    fault = msg.get("fault")
    if not (isinstance(fault, list) and len(fault) == n and all(_is_int(x) and 0 <= x <= 3 for x in fault)):
        errors.append("fault must be %d codes 0..3" % n)
    ota = msg.get("ota")
    if not (isinstance(ota, dict) and ota.get("state") in OTA_STATES and all(k in ("state", "version", "detail") for k in ota)
            and (ota.get("version") is None or valid_version(ota.get("version")))
            and (ota.get("detail") is None or (isinstance(ota.get("detail"), str) and len(ota["detail"]) <= 120))):
        errors.append("ota must be {state, version?, detail?}")
    ack = msg.get("ack")
    if ack is not None and not (isinstance(ack, dict) and all(k in ("id", "op", "result", "detail") for k in ack)
                                and _is_int(ack.get("id")) and 0 < ack["id"] <= MAX_COUNTER and ack.get("op") in LOCK_OPS
                                and ack.get("result") in LOCK_RESULTS
                                and (ack.get("detail") is None or (isinstance(ack["detail"], str) and len(ack["detail"]) <= 120))):
        errors.append("ack must be {id, op, result, detail?}")
    return errors


def check_reply(msg, slots):
    """Errors in a hub reply (empty list = valid)."""
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        return ["reply must be an object with v=%d" % VERSION]
    errors = []
    plan = msg.get("plan")
    if plan is not None:
        order = plan.get("order") if isinstance(plan, dict) else None
        if not (isinstance(order, list) and len(order) <= slots and all(_is_int(s) and 1 <= s <= slots for s in order)
                and len(set(order)) == len(order)):
            errors.append("plan.order must list distinct slot numbers 1..%d" % slots)
        ttl = plan.get("ttl") if isinstance(plan, dict) else None
        if not (_is_int(ttl) and 1 <= ttl <= 3600):
            errors.append("plan.ttl must be 1..3600 s")
    cmds = msg.get("cmds", [])
    if not isinstance(cmds, list) or len(cmds) > 8:
        return errors + ["cmds must be a list of at most 8 commands"]
    for cmd in cmds:
        op = cmd.get("op") if isinstance(cmd, dict) else None
        if op in LOCK_OPS:
            if not (_is_int(cmd.get("id")) and 0 < cmd["id"] <= MAX_COUNTER):
                errors.append(op + " needs a positive id")
            continue
        if op == "ota":
            errors.extend(check_manifest(cmd))
        else:
            errors.append("unknown command " + str(op))
    return errors


def check_manifest(manifest):
    """Errors in an OTA manifest {version, files: [{name, sha256, size}]}."""
    errors = []
    if not valid_version(manifest.get("version")):
        errors.append("manifest version invalid")
    files = manifest.get("files")
    if not (isinstance(files, list) and 1 <= len(files) <= MAX_FILES):
        return errors + ["manifest must list 1-%d files" % MAX_FILES]
    names = []
    for f in files:
        if not (isinstance(f, dict) and valid_file_name(f.get("name")) and isinstance(f.get("sha256"), str)
                and len(f["sha256"]) == 64 and all(c in _HEX for c in f["sha256"])
                and _is_int(f.get("size")) and 0 <= f["size"] <= MAX_FILE_BYTES):
            errors.append("manifest file entry invalid")
        else:
            names.append(f["name"])
    if len(set(names)) != len(names):
        errors.append("manifest names a file twice")
    return errors
