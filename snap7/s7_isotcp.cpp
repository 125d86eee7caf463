/*
 * snap7's ISO transport (TIsoTcpSocket, client side) on isotcp's C API.
 *
 * Part of isotcp (MIT OR Apache-2.0); not snap7 code. snap7/build.sh compiles it in place of
 * snap7 1.4.2's core/s7_isotcp.cpp. The S7 layer above (s7_peer, s7_micro_client, s7_client)
 * keeps working on PDU.Payload and reads the same error codes: an errIso* class in bits 16..19
 * ORed with the OS error number in LastTcpError, as snap7's texts (Cli_ErrorText) expect.
 *
 * What isotcp changes underneath: RemoteAddress may be a host name or an IPv6 literal (15
 * characters at most, the size of snap7's field); messages are segmented and reassembled by
 * the negotiated TPDU size; every call has one deadline; a timeout loses no data.
 */
#include "s7_isotcp.h"
#include "isotcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef OS_WINDOWS
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

namespace {

/* snap7 sends at most one DT per message and rejects larger ones, so its buffer (4096) bounds
   what a message may carry; isotcp closes the connection on anything larger, which keeps the
   stream in step (snap7 would purge and guess). */
const uint32_t kMaxMessage = IsoPayload_Size;

/* snap7 offers 2048 for a size it does not know. */
uint32_t tpdu_size_of(int requested)
{
    switch (requested) {
    case 128:
    case 256:
    case 512:
    case 1024:
    case 2048:
    case 4096:
    case 8192:
        return uint32_t(requested);
    default:
        return 2048;
    }
}

/* snap7's SendTimeout 0 means "do not wait for writability first", i.e. a plain blocking
   send; isotcp's 0 means "never wait". */
uint32_t send_deadline_of(int send_timeout)
{
    return send_timeout > 0 ? uint32_t(send_timeout) : 24u * 3600u * 1000u;
}

uint32_t non_negative(int ms)
{
    return ms > 0 ? uint32_t(ms) : 0u;
}

int os_error_of(const iso_conn *conn)
{
    int32_t os = 0;
    if (conn == NULL || iso_last_os_error(conn, &os) != ISO_OK)
        return 0;
    return int(os);
}

unsigned long next_trace_number()
{
    static unsigned long counter = 0;
    return __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
}

} // namespace

//---------------------------------------------------------------------------
TIsoTcpSocket::TIsoTcpSocket()
{
    memset(&FState, 0, sizeof(FState));
    memset(&PDU, 0, sizeof(PDU));
    RecvTimeout = 3000; // snap7's client default: old CPUs answer slowly
    RemotePort = isoTcpPort;
    SrcTSap = 0x0100;
    DstTSap = 0x0102;
    DstRef = 0x0000;
    SrcRef = 0x0100;
    IsoPDUSize = 1024;
    IsoMaxFragments = MaxIsoFragments;
    LastIsoError = 0;
}
//---------------------------------------------------------------------------
TIsoTcpSocket::~TIsoTcpSocket()
{
    iso_conn *conn = FState.Conn;
    FState.Conn = NULL;
    iso_destroy(conn);
    Connected = false;
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::SetIsoError(int Error)
{
    LastIsoError = Error | LastTcpError;
    return LastIsoError;
}
//---------------------------------------------------------------------------
void TIsoTcpSocket::ClrIsoError()
{
    LastIsoError = 0;
    LastTcpError = 0;
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::PDUSize(void *pPDU)
{
    PIsoHeaderInfo info = PIsoHeaderInfo(pPDU);
    return info->TPKT.HI_Lenght * 256 + info->TPKT.LO_Lenght;
}
//---------------------------------------------------------------------------
// The checks snap7 makes on a packet it is given: TPKT length 7..4096, a COTP length
// indicator of at least 2, and the expected TPDU code.
int TIsoTcpSocket::CheckPDU(void *pPDU, u_char PduTypeExpected)
{
    ClrIsoError();
    if (pPDU == NULL)
        return SetIsoError(errIsoNullPointer);
    PIsoHeaderInfo info = PIsoHeaderInfo(pPDU);
    int size = PDUSize(pPDU);
    if (size < 7 || size > IsoPayload_Size || info->HLength < sizeof(TCOTP_DT) - 1 ||
        info->PDUType != PduTypeExpected)
        return SetIsoError(errIsoInvalidPDU);
    return noError;
}
//---------------------------------------------------------------------------
void TIsoTcpSocket::TraceIfAsked()
{
    const char *dir = getenv("ISOTCP_SNAP7_PCAP_DIR");
    if (dir == NULL || *dir == '\0')
        return;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/snap7-%ld-%lu.pcap", dir, long(getpid()),
                     next_trace_number());
    if (n > 0 && size_t(n) < sizeof path)
        iso_set_trace_file(FState.Conn, path); // a failure to trace never fails the connect
}
//---------------------------------------------------------------------------
// snap7 builds its CR here from the address fields; the isotcp handle is that CR's source:
// a new one per connect, since RemoteAddress, RemotePort and the TSAPs may have changed.
int TIsoTcpSocket::BuildControlPDU()
{
    ClrIsoError();
    iso_conn *old = FState.Conn;
    FState.Conn = NULL;
    iso_destroy(old);

    char host[sizeof(RemoteAddress) + 1];
    memcpy(host, RemoteAddress, sizeof(RemoteAddress));
    host[sizeof(RemoteAddress)] = '\0';

    iso_conn *conn = NULL;
    if (iso_create(host, RemotePort, &conn) != ISO_OK) {
        LastTcpError = WSAEINVALIDADDRESS;
        return LastTcpError;
    }
    FState.Conn = conn;
    if (iso_set_tsap(conn, SrcTSap, DstTSap) != ISO_OK ||
        iso_set_tpdu_size(conn, tpdu_size_of(IsoPDUSize)) != ISO_OK)
        return SetIsoError(errIsoInvalidParams);
    if (iso_set_send_timeout(conn, send_deadline_of(SendTimeout)) != ISO_OK ||
        iso_set_max_message(conn, kMaxMessage) != ISO_OK)
        return SetIsoError(errIsoConnect);
    TraceIfAsked();
    return noError;
}
//---------------------------------------------------------------------------
// snap7's classification of a failed connect: before TCP is up the result is the bare OS
// error (EHOSTUNREACH when the connect did not complete in time, as snap7's own connect
// reports it); once the CR is out it is errIsoRecvPacket with the OS error, or
// errIsoInvalidPDU for an answer that is not a CC.
int TIsoTcpSocket::FailConnect(int rc)
{
    iso_conn *conn = FState.Conn;
    Connected = false;
    int32_t phase = ISO_PHASE_NONE;
    iso_get_connect_phase(conn, &phase);
    int os = os_error_of(conn);

    if (rc == ISO_E_RESOLVE || phase == ISO_PHASE_RESOLVE) {
        LastTcpError = WSAEINVALIDADDRESS;
        return LastTcpError;
    }
    if (phase == ISO_PHASE_TCP || rc == ISO_E_REFUSED) {
        if (rc == ISO_E_TIMEOUT || rc == ISO_E_WOULD_BLOCK)
            LastTcpError = WSAEHOSTUNREACH;
        else if (os != 0)
            LastTcpError = os;
        else
            LastTcpError = rc == ISO_E_REFUSED ? WSAECONNREFUSED : WSAEHOSTUNREACH;
        return LastTcpError;
    }
    switch (rc) {
    case ISO_E_TIMEOUT:
    case ISO_E_WOULD_BLOCK:
        LastTcpError = WSAETIMEDOUT;
        return SetIsoError(errIsoRecvPacket);
    case ISO_E_CLOSED:
        LastTcpError = os != 0 ? os : WSAECONNRESET;
        return SetIsoError(errIsoRecvPacket);
    case ISO_E_REJECTED:
    case ISO_E_PROTOCOL:
    case ISO_E_TOO_LARGE:
        LastTcpError = 0;
        return SetIsoError(errIsoInvalidPDU);
    case ISO_E_IO:
        LastTcpError = os != 0 ? os : WSAECONNRESET;
        return SetIsoError(errIsoRecvPacket);
    default:
        LastTcpError = 0;
        return SetIsoError(errIsoConnect);
    }
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::isoConnect()
{
    ClrIsoError();
    FState.ReplyMayBeLate = 0;
    int Result = BuildControlPDU();
    if (Result != noError) {
        Connected = false;
        return Result;
    }
    // snap7 bounds the TCP connect by PingTimeout and the CC by RecvTimeout; isotcp has one
    // deadline for the whole connect, so it gets both.
    uint32_t deadline = non_negative(PingTimeout) + non_negative(RecvTimeout);
    if (deadline == 0)
        deadline = 1;
    int rc = iso_connect(FState.Conn, deadline);
    if (rc != ISO_OK)
        return FailConnect(rc);
    Connected = true;

#ifndef OS_WINDOWS
    // LocalAddress/LocalPort as snap7 fills them (IPv4 only: the field has 16 characters).
    int64_t fd = -1;
    if (iso_get_fd(FState.Conn, &fd) == ISO_OK) {
        sockaddr_in local;
        socklen_t len = sizeof local;
        if (getsockname(int(fd), (sockaddr *)&local, &len) == 0 && local.sin_family == AF_INET &&
            inet_ntop(AF_INET, &local.sin_addr, LocalAddress, sizeof LocalAddress) != NULL) {
            LocalPort = ntohs(local.sin_port);
            ClientHandle = local.sin_addr.s_addr;
        }
    }
#endif
    return noError;
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::isoDisconnect(bool OnlyTCP)
{
    (void)OnlyTCP; // class 0 releases by closing TCP; a DR would change nothing for the PLC
    ClrIsoError();
    FState.ReplyMayBeLate = 0;
    if (FState.Conn != NULL)
        iso_disconnect(FState.Conn);
    Connected = false;
    return noError;
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::FailSend(int rc)
{
    int os = os_error_of(FState.Conn);
    switch (rc) {
    case ISO_E_TIMEOUT:
    case ISO_E_WOULD_BLOCK:
        LastTcpError = WSAETIMEDOUT;
        break;
    case ISO_E_CLOSED:
        LastTcpError = os != 0 ? os : WSAECONNRESET;
        break;
    case ISO_E_STATE:
        LastTcpError = WSAENOTCONN;
        break;
    case ISO_E_TOO_LARGE:
    case ISO_E_INVALID:
        LastTcpError = 0;
        return SetIsoError(errIsoInvalidDataSize);
    default:
        LastTcpError = os != 0 ? os : WSAECONNRESET;
        break;
    }
    Connected = FState.Conn != NULL && iso_check_connection(FState.Conn) == 1;
    return SetIsoError(errIsoSendPacket);
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::FailRecv(int rc)
{
    int os = os_error_of(FState.Conn);
    int iso_class = errIsoRecvPacket;
    switch (rc) {
    case ISO_E_TIMEOUT:
    case ISO_E_WOULD_BLOCK:
        LastTcpError = WSAETIMEDOUT;
        FState.ReplyMayBeLate = 1;
        break;
    case ISO_E_CLOSED:
        LastTcpError = os != 0 ? os : WSAECONNRESET;
        break;
    case ISO_E_STATE:
        LastTcpError = WSAENOTCONN;
        break;
    case ISO_E_PROTOCOL:
        LastTcpError = 0;
        iso_class = errIsoInvalidPDU;
        break;
    case ISO_E_TOO_LARGE:
    case ISO_E_BUFFER_TOO_SMALL:
        // A message that does not fit PDU.Payload: drop the connection rather than the
        // message, so that no later answer is taken for another request's.
        LastTcpError = 0;
        iso_class = errIsoPduOverflow;
        iso_disconnect(FState.Conn);
        break;
    default:
        LastTcpError = os != 0 ? os : WSAECONNRESET;
        break;
    }
    Connected = FState.Conn != NULL && iso_check_connection(FState.Conn) == 1;
    return SetIsoError(iso_class);
}
//---------------------------------------------------------------------------
// After a receive timeout the PLC may still answer; snap7 purges the socket for that reason.
// Whole messages that arrived since are dropped before the next request goes out, so the
// next answer read is that request's.
void TIsoTcpSocket::DropLateReplies()
{
    if (!FState.ReplyMayBeLate || FState.Conn == NULL)
        return;
    u_char scratch[IsoPayload_Size];
    size_t len = 0;
    while (iso_poll(FState.Conn, 0) == 1) {
        if (iso_recv(FState.Conn, scratch, sizeof scratch, &len, 0) != ISO_OK)
            break;
        FState.ReplyMayBeLate = 0;
    }
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::isoSendBuffer(void *Data, int Size)
{
    ClrIsoError();
    if (Size <= 0 || u_int(Size) + DataHeaderSize > IsoFrameSize)
        return SetIsoError(errIsoInvalidDataSize);
    u_int iso_size = u_int(Size) + DataHeaderSize;
    // The header as snap7 leaves it in PDU, for code that looks at it after a send.
    PDU.TPKT.Version = isoTcpVersion;
    PDU.TPKT.Reserved = 0;
    PDU.TPKT.HI_Lenght = (iso_size >> 8) & 0xFF;
    PDU.TPKT.LO_Lenght = iso_size & 0xFF;
    PDU.COTP.HLength = sizeof(TCOTP_DT) - 1;
    PDU.COTP.PDUType = pdu_type_DT;
    PDU.COTP.EoT_Num = pdu_EoT;
    if (Data != NULL && Data != (void *)&PDU.Payload)
        memmove(&PDU.Payload, Data, size_t(Size));
    if (FState.Conn == NULL) {
        LastTcpError = WSAENOTCONN;
        return SetIsoError(errIsoSendPacket);
    }
    DropLateReplies();
    int rc = iso_send(FState.Conn, PDU.Payload, size_t(Size));
    return rc == ISO_OK ? noError : FailSend(rc);
}
//---------------------------------------------------------------------------
// One whole (reassembled) message into PDU.Payload, with PDU's headers rewritten for its
// length, as snap7 leaves them after joining fragments.
int TIsoTcpSocket::ReceiveMessage()
{
    if (FState.Conn == NULL) {
        LastTcpError = WSAENOTCONN;
        return SetIsoError(errIsoRecvPacket);
    }
    size_t len = 0;
    int rc = iso_recv(FState.Conn, PDU.Payload, sizeof PDU.Payload, &len,
                      non_negative(RecvTimeout));
    if (rc != ISO_OK)
        return FailRecv(rc);
    u_int iso_size = u_int(len) + DataHeaderSize;
    PDU.TPKT.Version = isoTcpVersion;
    PDU.TPKT.Reserved = 0;
    PDU.TPKT.HI_Lenght = (iso_size >> 8) & 0xFF;
    PDU.TPKT.LO_Lenght = iso_size & 0xFF;
    PDU.COTP.HLength = sizeof(TCOTP_DT) - 1;
    PDU.COTP.PDUType = pdu_type_DT;
    PDU.COTP.EoT_Num = pdu_EoT;
    return noError;
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::isoRecvBuffer(void *Data, int &Size)
{
    ClrIsoError();
    Size = 0;
    int Result = ReceiveMessage();
    if (Result == noError) {
        Size = PDUSize(&PDU) - int(DataHeaderSize);
        if (Data != NULL && Data != (void *)&PDU.Payload)
            memmove(Data, &PDU.Payload, size_t(Size));
    }
    return Result;
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::isoExchangeBuffer(void *Data, int &Size)
{
    ClrIsoError();
    int Result = isoSendBuffer(Data, Size);
    if (Result == noError)
        Result = isoRecvBuffer(Data, Size);
    return Result;
}
//---------------------------------------------------------------------------
bool TIsoTcpSocket::IsoPDUReady()
{
    ClrIsoError();
    return FState.Conn != NULL && iso_poll(FState.Conn, 0) == 1;
}
//---------------------------------------------------------------------------
// A whole DT given by the caller: its payload goes out as one message (segmented by isotcp
// if it exceeds the negotiated TPDU size).
int TIsoTcpSocket::isoSendPDU(PIsoDataPDU Data)
{
    ClrIsoError();
    int Result = CheckPDU(Data, pdu_type_DT);
    if (Result != noError)
        return Result;
    int size = PDUSize(Data) - int(DataHeaderSize);
    if (size <= 0)
        return SetIsoError(errIsoInvalidDataSize);
    if (FState.Conn == NULL) {
        LastTcpError = WSAENOTCONN;
        return SetIsoError(errIsoSendPacket);
    }
    DropLateReplies();
    int rc = iso_send(FState.Conn, Data->Payload, size_t(size));
    return rc == ISO_OK ? noError : FailSend(rc);
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::isoRecvPDU(PIsoDataPDU Data)
{
    ClrIsoError();
    int Result = ReceiveMessage();
    if (Result == noError && Data != NULL && Data != &PDU)
        memcpy(Data, &PDU, size_t(PDUSize(&PDU)));
    return Result;
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::isoExchangePDU(PIsoDataPDU Data)
{
    ClrIsoError();
    int Result = isoSendPDU(Data);
    if (Result == noError)
        Result = isoRecvPDU(Data);
    return Result;
}
//---------------------------------------------------------------------------
void TIsoTcpSocket::IsoPeek(void *pPDU, TPDUKind &PduKind)
{
    PIsoHeaderInfo info = PIsoHeaderInfo(pPDU);
    u_int len = u_int(PDUSize(info));
    if (len == DataHeaderSize) {
        PduKind = pkEmptyFragment;
        return;
    }
    if (len < DataHeaderSize) {
        PduKind = pkInvalidPDU;
        return;
    }
    switch (info->PDUType) {
    case pdu_type_CR:
        PduKind = pkConnectionRequest;
        break;
    case pdu_type_DR:
        PduKind = pkDisconnectRequest;
        break;
    case pdu_type_DT:
        PduKind = pkValidData;
        break;
    default:
        PduKind = pkUnrecognizedType;
    }
}
//---------------------------------------------------------------------------
// Server side: this build's server and partner keep snap7's own transport (see build.sh),
// so a client object never confirms a CR.
void TIsoTcpSocket::IsoParsePDU(TIsoControlPDU)
{
}
//---------------------------------------------------------------------------
int TIsoTcpSocket::IsoConfirmConnection(u_char)
{
    ClrIsoError();
    return SetIsoError(errIsoConnect);
}
//---------------------------------------------------------------------------
void TIsoTcpSocket::FragmentSkipped(int)
{
}
//---------------------------------------------------------------------------
void ErrIsoText(int Error, char *Msg, int len)
{
    if (Msg == NULL || len <= 0)
        return;
    const char *text;
    switch (longword(Error) & errIsoMask) {
    case 0: text = "no ISO error"; break;
    case errIsoConnect: text = "ISO: connect failed"; break;
    case errIsoDisconnect: text = "ISO: disconnect failed"; break;
    case errIsoInvalidPDU: text = "ISO: malformed or unexpected packet"; break;
    case errIsoInvalidDataSize: text = "ISO: invalid data size for send or receive"; break;
    case errIsoNullPointer: text = "ISO: NULL pointer"; break;
    case errIsoShortPacket: text = "ISO: packet too short"; break;
    case errIsoTooManyFragments: text = "ISO: too many fragments in one message"; break;
    case errIsoPduOverflow: text = "ISO: message larger than the buffer"; break;
    case errIsoSendPacket: text = "ISO: send failed"; break;
    case errIsoRecvPacket: text = "ISO: receive failed"; break;
    case errIsoInvalidParams: text = "ISO: invalid connection parameters (TSAPs)"; break;
    default: text = "ISO: unknown error"; break;
    }
    snprintf(Msg, size_t(len), "%s", text);
}
