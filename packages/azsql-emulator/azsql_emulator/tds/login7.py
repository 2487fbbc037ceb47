"""LOGIN7 message codec (2.2.6.4) with FeatureExt blocks and the FEDAUTH feature."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from azsql_emulator.tds.constants import FeatureId, FedAuthLibrary
from azsql_emulator.tds.packet import ProtocolError

__all__ = [
    "OPTION_FLAGS3_EXTENSION",
    "FeatureExt",
    "FedAuthFeature",
    "Login7",
    "decode_features",
    "decode_fedauth_feature",
    "decode_login7",
    "decode_password",
    "encode_features",
    "encode_fedauth_feature",
    "encode_login7",
    "encode_password",
]

OPTION_FLAGS3_EXTENSION = 0x10  # fExtension: ibExtension points at the FeatureExt offset

# Length, TDSVersion, PacketSize, ClientProgVer, ClientPID, ConnectionID,
# OptionFlags1, OptionFlags2, TypeFlags, OptionFlags3, ClientTimeZone, ClientLCID
_FIXED = struct.Struct("<IIIIIIBBBBiI")
# 9 (offset, length) pairs: HostName, UserName, Password, AppName, ServerName,
# Extension, CltIntName, Language, Database
_PAIRS = struct.Struct("<18H")
_CLIENT_ID_POS = _FIXED.size + _PAIRS.size  # 72
# ibSSPI, cbSSPI, ibAtchDBFile, cchAtchDBFile, ibChangePassword, cchChangePassword, cbSSPILong
_TAIL = struct.Struct("<HHHHHHI")
_TAIL_POS = _CLIENT_ID_POS + 6  # 78
_HEADER_SIZE = _TAIL_POS + _TAIL.size  # 94 for TDS 7.2+
_HEADER_SIZE_71 = _TAIL_POS + 8  # 86: no ChangePassword and cbSSPILong before TDS 7.2
_LEGACY_VERSIONS = frozenset({0x70000000, 0x71000000, 0x71000001})
_U32 = struct.Struct("<I")
_FEATURE = struct.Struct("<BI")

# Password obfuscation (2.2.6.4): swap the nibbles of every byte, then XOR 0xA5.
_OBFUSCATE = bytes(((((b << 4) & 0xF0) | (b >> 4)) ^ 0xA5) for b in range(256))
_CLARIFY = bytes.maketrans(_OBFUSCATE, bytes(range(256)))


def encode_password(password: str) -> bytes:
    """Obfuscate a password as LOGIN7 carries it (UTF-16LE, nibble swap, XOR 0xA5).

    >>> encode_password("a").hex()
    'b3a5'
    """
    return password.encode("utf-16-le", "surrogatepass").translate(_OBFUSCATE)


def decode_password(raw: bytes) -> str:
    """Reverse :func:`encode_password`."""
    try:
        return bytes(raw).translate(_CLARIFY).decode("utf-16-le", "surrogatepass")
    except UnicodeDecodeError as e:
        raise ProtocolError(f"LOGIN7 password is not UTF-16LE: {e}") from None


class FeatureExt(NamedTuple):
    """One FeatureExt entry (FeatureId, FeatureData); the FEDAUTH data is redacted in repr."""

    feature_id: int
    data: bytes = b""

    def __repr__(self) -> str:
        if self.feature_id == FeatureId.FEDAUTH and self.data:
            return (f"FeatureExt(feature_id={self.feature_id}, "
                    f"data=<{len(self.data)} bytes redacted>)")
        return f"FeatureExt(feature_id={self.feature_id}, data={self.data!r})"


@dataclass(frozen=True)
class FedAuthFeature:
    """The FEDAUTH FeatureExt data.

    :param library: :class:`~azsql_emulator.tds.constants.FedAuthLibrary`.
    :param echo: fFedAuthEcho: the client echoes the server's FEDAUTHREQUIRED.
    :param token: the access token (SECURITYTOKEN only); never shown in repr.
    :param nonce: 32-byte nonce echoed from the server's PRELOGIN NONCEOPT, if any.
    :param workflow: ADAL/MSAL workflow byte (ADAL only).
    """

    library: int = FedAuthLibrary.SECURITYTOKEN
    echo: bool = False
    token: str | None = field(default=None, repr=False)
    nonce: bytes | None = None
    workflow: int | None = None


def encode_fedauth_feature(f: FedAuthFeature) -> bytes:
    """Encode FEDAUTH feature data: options byte ``(library << 1) | echo``, then per library.

    >>> encode_fedauth_feature(FedAuthFeature(FedAuthLibrary.SECURITYTOKEN, True, "t")).hex()
    '03020000007400'
    """
    out = bytearray([(f.library << 1) | int(f.echo)])
    if f.library == FedAuthLibrary.SECURITYTOKEN:
        token = (f.token or "").encode("utf-16-le")
        out += _U32.pack(len(token))
        out += token
        if f.nonce is not None:
            if len(f.nonce) != 32:
                raise ValueError("FEDAUTH nonce must be 32 bytes")
            out += f.nonce
    elif f.library == FedAuthLibrary.ADAL:
        out.append(f.workflow or 0)
    return bytes(out)


def decode_fedauth_feature(data: bytes) -> FedAuthFeature:
    """Decode FEDAUTH feature data; ProtocolError on a bad length or unknown library."""
    if not data:
        raise ProtocolError("FEDAUTH feature data is empty")
    library, echo = data[0] >> 1, bool(data[0] & 1)
    if library == FedAuthLibrary.SECURITYTOKEN:
        if len(data) < 5:
            raise ProtocolError("FEDAUTH SECURITYTOKEN data too short for the token length")
        (size,) = _U32.unpack_from(data, 1)
        end = 5 + size
        if end > len(data) or size % 2:
            raise ProtocolError(f"FEDAUTH token length {size} does not fit the feature data")
        rest = len(data) - end
        if rest not in (0, 32):
            raise ProtocolError(f"FEDAUTH data has {rest} bytes after the token (nonce must be 32)")
        try:
            token = bytes(data[5:end]).decode("utf-16-le")
        except UnicodeDecodeError:
            raise ProtocolError("FEDAUTH token is not UTF-16LE") from None
        return FedAuthFeature(library, echo, token, bytes(data[end:]) if rest else None)
    if library == FedAuthLibrary.ADAL:
        if len(data) != 2:
            raise ProtocolError(f"FEDAUTH ADAL data must be 2 bytes, got {len(data)}")
        return FedAuthFeature(library, echo, workflow=data[1])
    raise ProtocolError(f"unsupported FEDAUTH library {library}")


def encode_features(features: list[FeatureExt]) -> bytes:
    """Encode a FeatureExt block, terminator included."""
    out = bytearray()
    for f in features:
        out += _FEATURE.pack(f.feature_id, len(f.data))
        out += f.data
    out.append(FeatureId.TERMINATOR)
    return bytes(out)


def decode_features(b: bytes, pos: int = 0) -> tuple[list[FeatureExt], int]:
    """Decode a FeatureExt (or FEATUREEXTACK) list up to its 0xFF terminator."""
    out: list[FeatureExt] = []
    n = len(b)
    while True:
        if pos >= n:
            raise ProtocolError("feature list has no 0xFF terminator")
        fid = b[pos]
        if fid == FeatureId.TERMINATOR:
            return out, pos + 1
        if pos + _FEATURE.size > n:
            raise ProtocolError("feature list truncated in a feature header")
        _, size = _FEATURE.unpack_from(b, pos)
        pos += _FEATURE.size
        if pos + size > n:
            raise ProtocolError(f"feature 0x{fid:02x} length {size} runs past the end")
        out.append(FeatureExt(fid, bytes(b[pos:pos + size])))
        pos += size


@dataclass
class Login7:
    """Every LOGIN7 field; strings are clear text (the password is de-obfuscated)."""

    tds_version: int = 0x74000004
    packet_size: int = 4096
    client_prog_ver: int = 0
    client_pid: int = 0
    connection_id: int = 0
    option_flags1: int = 0xE0
    option_flags2: int = 0x03
    type_flags: int = 0
    option_flags3: int = 0
    client_time_zone: int = 0
    client_lcid: int = 0x0409
    hostname: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    appname: str = ""
    servername: str = ""
    library_name: str = ""
    language: str = ""
    database: str = ""
    client_id: bytes = b"\x00" * 6
    sspi: bytes = b""
    attach_db_file: str = ""
    change_password: str = field(default="", repr=False)
    features: list[FeatureExt] = field(default_factory=list)

    def feature(self, feature_id: int) -> FeatureExt | None:
        """The first FeatureExt with this id, or None."""
        return next((f for f in self.features if f.feature_id == feature_id), None)

    def fedauth(self) -> FedAuthFeature | None:
        """The decoded FEDAUTH feature, or None when the client did not send one."""
        f = self.feature(FeatureId.FEDAUTH)
        return None if f is None else decode_fedauth_feature(f.data)


def _utf16(s: str) -> bytes:
    return s.encode("utf-16-le", "surrogatepass")


def encode_login7(login: Login7) -> bytes:
    """Encode a LOGIN7 payload; features are written when present (setting fExtension)."""
    strings = [_utf16(login.hostname), _utf16(login.username), encode_password(login.password),
               _utf16(login.appname), _utf16(login.servername)]
    after_ext = [_utf16(login.library_name), _utf16(login.language), _utf16(login.database)]
    flags3 = login.option_flags3
    has_ext = bool(login.features) or bool(flags3 & OPTION_FLAGS3_EXTENSION)
    if has_ext:
        flags3 |= OPTION_FLAGS3_EXTENSION
    data = bytearray()
    pairs: list[int] = []

    def put(raw: bytes, count: int) -> None:
        pairs.extend((_HEADER_SIZE + len(data), count))
        data.extend(raw)

    for s in strings:
        put(s, len(s) // 2)
    ext_pos = len(data)
    if has_ext:
        put(b"\x00\x00\x00\x00", 4)  # patched below once the feature block's offset is known
    else:
        put(b"", 0)
    for s in after_ext:
        put(s, len(s) // 2)
    sspi_pos = _HEADER_SIZE + len(data)
    data += login.sspi
    atch = _utf16(login.attach_db_file)
    atch_pos = _HEADER_SIZE + len(data)
    data += atch
    chpw = encode_password(login.change_password)
    chpw_pos = _HEADER_SIZE + len(data)
    data += chpw
    if has_ext:
        data[ext_pos:ext_pos + 4] = _U32.pack(_HEADER_SIZE + len(data))
        data += encode_features(login.features)
    if _HEADER_SIZE + len(data) > 0xFFFFFFFF or max(pairs[0::2]) > 0xFFFF:
        raise ValueError("LOGIN7 strings too long for 16-bit offsets")
    cb_sspi = len(login.sspi)
    sspi_short, sspi_long = (cb_sspi, 0) if cb_sspi < 0xFFFF else (0xFFFF, cb_sspi)
    if len(login.client_id) != 6:
        raise ValueError("LOGIN7 client_id must be 6 bytes")
    header = (_FIXED.pack(_HEADER_SIZE + len(data), login.tds_version, login.packet_size,
                          login.client_prog_ver, login.client_pid, login.connection_id,
                          login.option_flags1, login.option_flags2, login.type_flags, flags3,
                          login.client_time_zone, login.client_lcid)
              + _PAIRS.pack(*pairs) + login.client_id
              + _TAIL.pack(sspi_pos, sspi_short, atch_pos, len(atch) // 2,
                           chpw_pos, len(chpw) // 2, sspi_long))
    return header + bytes(data)


def decode_login7(b: bytes) -> Login7:
    """Decode a LOGIN7 payload; every offset is checked, bad input raises ProtocolError."""
    try:
        return _decode_login7(b)
    except (struct.error, IndexError, ValueError) as e:
        raise ProtocolError(f"malformed LOGIN7: {e}") from None


def _decode_login7(b: bytes) -> Login7:
    b = bytes(b)
    if len(b) < _HEADER_SIZE_71:
        raise ProtocolError(f"LOGIN7 shorter than its fixed header ({len(b)} bytes)")
    (length, tds_version, packet_size, prog_ver, pid, conn_id, flags1, flags2, type_flags,
     flags3, tz, lcid) = _FIXED.unpack_from(b, 0)
    header_size = _HEADER_SIZE_71 if tds_version in _LEGACY_VERSIONS else _HEADER_SIZE
    if length > len(b) or length < header_size:
        raise ProtocolError(f"LOGIN7 Length {length} does not match the {len(b)}-byte payload")
    b = b[:length]
    pairs = _PAIRS.unpack_from(b, _FIXED.size)
    client_id = b[_CLIENT_ID_POS:_CLIENT_ID_POS + 6]
    if header_size == _HEADER_SIZE:
        ib_sspi, cb_sspi, ib_atch, cch_atch, ib_chpw, cch_chpw, cb_sspi_long = \
            _TAIL.unpack_from(b, _TAIL_POS)
    else:
        ib_sspi, cb_sspi, ib_atch, cch_atch = struct.unpack_from("<4H", b, _TAIL_POS)
        ib_chpw = cch_chpw = cb_sspi_long = 0

    def raw(ib: int, nbytes: int, what: str) -> bytes:
        if nbytes == 0:
            return b""
        if ib < header_size or ib + nbytes > length:
            raise ProtocolError(f"LOGIN7 {what} (offset {ib}, {nbytes} bytes) lies outside "
                                f"the {length}-byte message")
        return b[ib:ib + nbytes]

    def text(i: int, what: str) -> str:
        data = raw(pairs[2 * i], 2 * pairs[2 * i + 1], what)
        try:
            return data.decode("utf-16-le", "surrogatepass")
        except UnicodeDecodeError:
            raise ProtocolError(f"LOGIN7 {what} is not UTF-16LE") from None

    login = Login7(
        tds_version=tds_version, packet_size=packet_size, client_prog_ver=prog_ver,
        client_pid=pid, connection_id=conn_id, option_flags1=flags1, option_flags2=flags2,
        type_flags=type_flags, option_flags3=flags3, client_time_zone=tz, client_lcid=lcid,
        hostname=text(0, "HostName"), username=text(1, "UserName"),
        password=decode_password(raw(pairs[4], 2 * pairs[5], "Password")),
        appname=text(3, "AppName"), servername=text(4, "ServerName"),
        library_name=text(6, "CltIntName"), language=text(7, "Language"),
        database=text(8, "Database"), client_id=client_id,
    )
    sspi_len = cb_sspi_long if cb_sspi == 0xFFFF and cb_sspi_long else cb_sspi
    login.sspi = raw(ib_sspi, sspi_len, "SSPI")
    atch = raw(ib_atch, 2 * cch_atch, "AtchDBFile")
    try:
        login.attach_db_file = atch.decode("utf-16-le", "surrogatepass")
    except UnicodeDecodeError:
        raise ProtocolError("LOGIN7 AtchDBFile is not UTF-16LE") from None
    login.change_password = decode_password(raw(ib_chpw, 2 * cch_chpw, "ChangePassword"))
    if flags3 & OPTION_FLAGS3_EXTENSION:
        ib_ext, cb_ext = pairs[10], pairs[11]
        if cb_ext < 4:
            raise ProtocolError(f"LOGIN7 fExtension set but cbExtension is {cb_ext}, not 4")
        (feature_pos,) = _U32.unpack(raw(ib_ext, 4, "Extension"))
        if feature_pos < header_size or feature_pos >= length:
            raise ProtocolError(f"LOGIN7 FeatureExt offset {feature_pos} lies outside "
                                f"the {length}-byte message")
        login.features, _ = decode_features(b, feature_pos)
    return login
