"""TDS protocol constants, named as in MS-TDS (section numbers refer to [MS-TDS] v36+)."""

from __future__ import annotations

from enum import IntEnum, IntFlag


class PacketType(IntEnum):
    """Packet header Type byte (2.2.3.1.1)."""

    SQL_BATCH = 0x01
    PRE_TDS7_LOGIN = 0x02
    RPC = 0x03
    TABULAR_RESULT = 0x04
    ATTENTION = 0x06
    BULK_LOAD = 0x07
    FEDAUTH_TOKEN = 0x08
    TRANSACTION_MANAGER = 0x0E
    LOGIN7 = 0x10
    SSPI = 0x11
    PRELOGIN = 0x12


class PacketStatus(IntFlag):
    """Packet header Status bits (2.2.3.1.2)."""

    NORMAL = 0x00
    EOM = 0x01
    IGNORE = 0x02
    RESET_CONNECTION = 0x08
    RESET_CONNECTION_SKIP_TRAN = 0x10


class PreloginOption(IntEnum):
    """PRELOGIN option tokens (2.2.6.5)."""

    VERSION = 0x00
    ENCRYPTION = 0x01
    INSTOPT = 0x02
    THREADID = 0x03
    MARS = 0x04
    TRACEID = 0x05
    FEDAUTHREQUIRED = 0x06
    NONCEOPT = 0x07
    TERMINATOR = 0xFF


class Encryption(IntEnum):
    """PRELOGIN B_FENCRYPTION values (2.2.6.5)."""

    OFF = 0x00
    ON = 0x01
    NOT_SUP = 0x02
    REQ = 0x03
    CLIENT_CERT = 0x80  # OR-ed with the above when the client authenticates with a certificate


class TokenType(IntEnum):
    """Data stream token bytes (2.2.7)."""

    TVP_ROW = 0x01  # 2.2.7.24
    OFFSET = 0x78  # 2.2.7.16
    RETURNSTATUS = 0x79  # 2.2.7.18
    COLMETADATA = 0x81  # 2.2.7.4
    ALTMETADATA = 0x88  # 2.2.7.1
    DATACLASSIFICATION = 0xA3  # 2.2.7.5
    TABNAME = 0xA4  # 2.2.7.23
    COLINFO = 0xA5  # 2.2.7.3
    ORDER = 0xA9  # 2.2.7.17
    ERROR = 0xAA  # 2.2.7.10
    INFO = 0xAB  # 2.2.7.13
    RETURNVALUE = 0xAC  # 2.2.7.19
    LOGINACK = 0xAD  # 2.2.7.14
    FEATUREEXTACK = 0xAE  # 2.2.7.11
    ROW = 0xD1  # 2.2.7.20
    NBCROW = 0xD2  # 2.2.7.15
    ALTROW = 0xD3  # 2.2.7.2
    ENVCHANGE = 0xE3  # 2.2.7.9
    SESSIONSTATE = 0xE4  # 2.2.7.21
    SSPI = 0xED  # 2.2.7.22
    FEDAUTHINFO = 0xEE  # 2.2.7.12
    DONE = 0xFD  # 2.2.7.6
    DONEPROC = 0xFE  # 2.2.7.8
    DONEINPROC = 0xFF  # 2.2.7.7


class EnvChangeType(IntEnum):
    """ENVCHANGE Type byte (2.2.7.9)."""

    DATABASE = 0x01
    LANGUAGE = 0x02
    CHARSET = 0x03
    PACKET_SIZE = 0x04
    UNICODE_SORTING_LOCAL_ID = 0x05
    UNICODE_SORTING_FLAGS = 0x06
    SQL_COLLATION = 0x07
    BEGIN_TRANSACTION = 0x08
    COMMIT_TRANSACTION = 0x09
    ROLLBACK_TRANSACTION = 0x0A
    ENLIST_DTC_TRANSACTION = 0x0B
    DEFECT_TRANSACTION = 0x0C
    REAL_TIME_LOG_SHIPPING = 0x0D
    PROMOTE_TRANSACTION = 0x0F
    TRANSACTION_MANAGER_ADDRESS = 0x10
    TRANSACTION_ENDED = 0x11
    RESET_CONNECTION_ACK = 0x12
    USER_INSTANCE_STARTED = 0x13
    ROUTING = 0x14


class DoneStatus(IntFlag):
    """DONE / DONEPROC / DONEINPROC Status bits (2.2.7.6)."""

    FINAL = 0x000
    MORE = 0x001
    ERROR = 0x002
    INXACT = 0x004
    COUNT = 0x010
    ATTN = 0x020
    SRVERROR = 0x100


class FeatureId(IntEnum):
    """LOGIN7 FeatureExt / FEATUREEXTACK FeatureId (2.2.6.4, 2.2.7.11)."""

    SESSIONRECOVERY = 0x01
    FEDAUTH = 0x02
    COLUMNENCRYPTION = 0x04
    GLOBALTRANSACTIONS = 0x05
    AZURESQLSUPPORT = 0x08
    DATACLASSIFICATION = 0x09
    UTF8_SUPPORT = 0x0A
    AZURESQLDNSCACHING = 0x0B
    JSONSUPPORT = 0x0D
    VECTORSUPPORT = 0x0E
    USERAGENT = 0x10
    TERMINATOR = 0xFF


class FedAuthLibrary(IntEnum):
    """FEDAUTH FeatureExt bFedAuthLibrary (2.2.6.4): the 7 high bits of the options byte."""

    LIVEID = 0x00
    SECURITYTOKEN = 0x01
    ADAL = 0x02  # also MSAL; followed by a workflow byte


class FedAuthWorkflow(IntEnum):
    """FEDAUTH FeatureExt ADAL workflow byte (2.2.6.4)."""

    USERPASSWORD = 0x01
    INTEGRATED = 0x02
    INTERACTIVE = 0x03  # not in the spec text yet; confirmed by Microsoft on Q&A


class DataType(IntEnum):
    """TYPE_INFO type bytes (2.2.5.4)."""

    # FIXEDLENTYPE (2.2.5.4.1)
    NULLTYPE = 0x1F
    INT1 = 0x30
    BIT = 0x32
    INT2 = 0x34
    INT4 = 0x38
    DATETIM4 = 0x3A
    FLT4 = 0x3B
    MONEY = 0x3C
    DATETIME = 0x3D
    FLT8 = 0x3E
    MONEY4 = 0x7A
    INT8 = 0x7F
    # BYTELEN_TYPE (2.2.5.4.2)
    GUID = 0x24
    INTN = 0x26
    DECIMAL = 0x37  # legacy
    NUMERIC = 0x3F  # legacy
    BITN = 0x68
    DECIMALN = 0x6A
    NUMERICN = 0x6C
    FLTN = 0x6D
    MONEYN = 0x6E
    DATETIMN = 0x6F
    DATEN = 0x28
    TIMEN = 0x29
    DATETIME2N = 0x2A
    DATETIMEOFFSETN = 0x2B
    CHAR = 0x2F  # legacy
    VARCHAR = 0x27  # legacy
    BINARY = 0x2D  # legacy
    VARBINARY = 0x25  # legacy
    # USHORTLEN_TYPE
    BIGVARBIN = 0xA5
    BIGVARCHR = 0xA7
    BIGBINARY = 0xAD
    BIGCHAR = 0xAF
    NVARCHAR = 0xE7
    NCHAR = 0xEF
    # LONGLEN_TYPE / PARTLEN_TYPE
    XML = 0xF1
    UDT = 0xF0
    TEXT = 0x23
    IMAGE = 0x22
    NTEXT = 0x63
    SSVARIANT = 0x62
    TVP = 0xF3


class TransactionRequest(IntEnum):
    """TRANSACTION_MANAGER RequestType (2.2.6.9)."""

    TM_GET_DTC_ADDRESS = 0
    TM_PROPAGATE_XACT = 1
    TM_BEGIN_XACT = 5
    TM_PROMOTE_XACT = 6
    TM_COMMIT_XACT = 7
    TM_ROLLBACK_XACT = 8
    TM_SAVE_XACT = 9


class IsolationLevel(IntEnum):
    """TM_BEGIN_XACT isolation level byte (2.2.6.9)."""

    NO_CHANGE = 0x00
    READ_UNCOMMITTED = 0x01
    READ_COMMITTED = 0x02
    REPEATABLE_READ = 0x03
    SERIALIZABLE = 0x04
    SNAPSHOT = 0x05


class ProcId(IntEnum):
    """Well-known stored procedure ids in RPC requests (2.2.6.6)."""

    SP_CURSOR = 1
    SP_CURSOROPEN = 2
    SP_CURSORPREPARE = 3
    SP_CURSOREXECUTE = 4
    SP_CURSORPREPEXEC = 5
    SP_CURSORUNPREPARE = 6
    SP_CURSORFETCH = 7
    SP_CURSOROPTION = 8
    SP_CURSORCLOSE = 9
    SP_EXECUTESQL = 10
    SP_PREPARE = 11
    SP_EXECUTE = 12
    SP_PREPEXEC = 13
    SP_PREPEXECRPC = 14
    SP_UNPREPARE = 15


class AllHeadersType(IntEnum):
    """ALL_HEADERS HeaderType (2.2.5.3)."""

    QUERY_NOTIFICATIONS = 0x0001
    TRANSACTION_DESCRIPTOR = 0x0002
    TRACE_ACTIVITY = 0x0003


class RpcOption(IntFlag):
    """RPC OptionFlags (2.2.6.6)."""

    NONE = 0x00
    WITH_RECOMP = 0x01
    NO_METADATA = 0x02
    REUSE_METADATA = 0x04


class ParamStatus(IntFlag):
    """RPC parameter StatusFlags (2.2.6.6)."""

    NONE = 0x00
    BY_REF_VALUE = 0x01  # output parameter
    DEFAULT_VALUE = 0x02
    ENCRYPTED = 0x08


class ColumnFlag(IntFlag):
    """COLMETADATA Flags (2.2.7.4)."""

    NONE = 0x0000
    NULLABLE = 0x0001
    CASE_SENSITIVE = 0x0002
    UPDATEABLE_READWRITE = 0x0004  # usUpdateable is 2 bits: 0 read-only, 1 read/write, 2 unknown
    UPDATEABLE_UNKNOWN = 0x0008
    IDENTITY = 0x0010
    COMPUTED = 0x0020
    FIXED_LEN_CLR_TYPE = 0x0100
    SPARSE_COLUMN_SET = 0x0400
    ENCRYPTED = 0x0800
    HIDDEN = 0x2000
    KEY = 0x4000
    NULLABLE_UNKNOWN = 0x8000


# TDS versions as LOGIN7 carries them (little-endian DWORD) and LOGINACK (big-endian).
TDS_VERSION_7_4 = 0x74000004
TDS_VERSION_8_0 = 0x08000000
