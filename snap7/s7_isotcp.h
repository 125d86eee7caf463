/*
 * snap7's ISO transport (class TIsoTcpSocket, client side) implemented on isotcp.
 *
 * Part of isotcp (MIT OR Apache-2.0). This file is not snap7 code: it declares the same
 * names, constants and class layout as snap7 1.4.2's core/s7_isotcp.h so that snap7's other
 * sources compile against it unchanged; snap7/build.sh puts it in place of that header.
 *
 * Layout rule: the data members below have the same types, order and sizes as snap7's, and the
 * virtual functions the same order, because snap7_libmain.cpp allocates TSnap7Partner objects
 * whose code is compiled against snap7's own transport (the partner and the server keep it):
 * both views of the class must agree. build.sh checks the sizes and offsets before linking.
 */
#ifndef s7_isotcp_h
#define s7_isotcp_h

#include "snap_msgsock.h"

struct iso_conn;

#pragma pack(1)

#define isoTcpVersion 3 /* TPKT version, RFC 1006 */
#define isoTcpPort 102 /* RFC 1006 */
#define isoInvalidHandle 0
#define MaxTSAPLength 16
#define MaxIsoFragments 64
#define IsoPayload_Size 4096 /* capacity of PDU.Payload, the largest S7 PDU snap7 handles */

#define noError 0

/* Error classes in bits 16..19; the low 16 bits carry the OS error (LastTcpError). */
const longword errIsoMask = 0x000F0000;
const longword errIsoBase = 0x0000FFFF;
const longword errIsoConnect = 0x00010000;
const longword errIsoDisconnect = 0x00020000;
const longword errIsoInvalidPDU = 0x00030000;
const longword errIsoInvalidDataSize = 0x00040000;
const longword errIsoNullPointer = 0x00050000;
const longword errIsoShortPacket = 0x00060000;
const longword errIsoTooManyFragments = 0x00070000;
const longword errIsoPduOverflow = 0x00080000;
const longword errIsoSendPacket = 0x00090000;
const longword errIsoRecvPacket = 0x000A0000;
const longword errIsoInvalidParams = 0x000B0000;
const longword errIsoResvd_1 = 0x000C0000;
const longword errIsoResvd_2 = 0x000D0000;
const longword errIsoResvd_3 = 0x000E0000;
const longword errIsoResvd_4 = 0x000F0000;

const longword ISO_OPT_TCP_NODELAY = 0x00000001;
const longword ISO_OPT_INSIDE_MTU = 0x00000002;

/* RFC 1006 packet header. */
typedef struct {
    u_char Version;
    u_char Reserved;
    u_char HI_Lenght;
    u_char LO_Lenght;
} TTPKT;

/* CR/CC variable part: TPDU size parameter, then TSAPs and anything else. */
typedef struct {
    u_char PduSizeCode;
    u_char PduSizeLen;
    u_char PduSizeVal;
    u_char TSAP[245];
} TCOPT_Params;

/* Fixed part of CR, CC, DR and DC, then the parameters. */
typedef struct {
    u_char HLength;
    u_char PDUType;
    u_short DstRef;
    u_short SrcRef;
    u_char CO_R;
    TCOPT_Params Params;
} TCOTP_CO;
typedef TCOTP_CO *PCOTP_CO;

/* DT header: length indicator 2, code 0xF0, EOT in bit 7 of the last byte. */
typedef struct {
    u_char HLength;
    u_char PDUType;
    u_char EoT_Num;
} TCOTP_DT;
typedef TCOTP_DT *PCOTP_DT;

typedef struct {
    TTPKT TPKT;
    u_char HLength;
    u_char PDUType;
} TIsoHeaderInfo;
typedef TIsoHeaderInfo *PIsoHeaderInfo;

const byte pdu_type_CR = 0xE0;
const byte pdu_type_CC = 0xD0;
const byte pdu_type_DR = 0x80;
const byte pdu_type_DC = 0xC0;
const byte pdu_type_DT = 0xF0;
const byte pdu_EoT = 0x80;

const longword DataHeaderSize = sizeof(TTPKT) + sizeof(TCOTP_DT);
const longword IsoFrameSize = IsoPayload_Size + DataHeaderSize;

typedef struct {
    TTPKT TPKT;
    TCOTP_CO COTP;
} TIsoControlPDU;
typedef TIsoControlPDU *PIsoControlPDU;

typedef u_char TIsoPayload[IsoPayload_Size];

/* One data message as snap7's S7 layer sees it: headers, then the S7 PDU in Payload. */
typedef struct {
    TTPKT TPKT;
    TCOTP_DT COTP;
    TIsoPayload Payload;
} TIsoDataPDU;
typedef TIsoDataPDU *PIsoDataPDU;
typedef TIsoPayload *PIsoPayload;

typedef enum {
    pkConnectionRequest,
    pkDisconnectRequest,
    pkEmptyFragment,
    pkInvalidPDU,
    pkUnrecognizedType,
    pkValidData
} TPDUKind;

/* What the transport keeps besides snap7's fields. Packed and exactly as large as snap7's
   private control PDU, which it replaces, so the class layout stays snap7's. */
typedef struct {
    struct iso_conn *Conn;    /* NULL until the first isoConnect */
    u_char ReplyMayBeLate;    /* a receive timed out: its answer may still arrive */
    u_char Reserved[sizeof(TIsoControlPDU) - sizeof(struct iso_conn *) - 1];
} TIsoTransportState;

#pragma pack()

typedef char TIsoTransportStateSizeCheck[sizeof(TIsoTransportState) == sizeof(TIsoControlPDU) ? 1 : -1];

/* A text for an errIso* class (the S7 texts of s7_text.cpp are what snap7's API returns). */
void ErrIsoText(int Error, char *Msg, int len);

class TIsoTcpSocket : public TMsgSocket
{
private:
    TIsoTransportState FState;
    int IsoMaxFragments;
    int CheckPDU(void *pPDU, u_char PduTypeExpected);
    /* isotcp plumbing */
    int ApplySettings();
    int FailConnect(int rc);
    int FailSend(int rc);
    int FailRecv(int rc);
    int ReceiveMessage();
    void DropLateReplies();
    void TraceIfAsked();

protected:
    TIsoDataPDU PDU;
    int SetIsoError(int Error);
    virtual int BuildControlPDU();
    int PDUSize(void *pPDU);
    virtual void IsoParsePDU(TIsoControlPDU PDU);
    int IsoConfirmConnection(u_char PDUType);
    void ClrIsoError();
    virtual void FragmentSkipped(int Size);

public:
    word SrcTSap;
    word DstTSap;
    word SrcRef;
    word DstRef;
    int IsoPDUSize;
    int LastIsoError;

    TIsoTcpSocket();
    ~TIsoTcpSocket();
    /* Resolves RemoteAddress, opens TCP to RemotePort, sends the CR and checks the CC. */
    int isoConnect();
    /* Closes TCP (class 0 has no DR; OnlyTCP=false changes nothing). */
    int isoDisconnect(bool OnlyTCP);
    /* Sends Size bytes (from Data, or from PDU.Payload when Data is NULL) as one message. */
    int isoSendBuffer(void *Data, int Size);
    /* Receives one whole message into PDU.Payload (and Data when not NULL); Size = its length. */
    int isoRecvBuffer(void *Data, int &Size);
    int isoExchangeBuffer(void *Data, int &Size);
    /* True when a whole message is waiting. */
    bool IsoPDUReady();
    int isoSendPDU(PIsoDataPDU Data);
    int isoRecvPDU(PIsoDataPDU Data);
    int isoExchangePDU(PIsoDataPDU Data);
    void IsoPeek(void *pPDU, TPDUKind &PduKind);
};

#endif
