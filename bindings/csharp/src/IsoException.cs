using System;
using System.IO;

namespace Isotcp
{
    /// <summary>The library's result codes (stable, never renumbered).</summary>
    public enum IsoError
    {
        Ok = 0,
        /// <summary>Invalid argument.</summary>
        Invalid = -1,
        /// <summary>Not allowed now (e.g. not connected, or a setter after connect).</summary>
        State = -2,
        /// <summary>The host name could not be resolved.</summary>
        Resolve = -3,
        /// <summary>The TCP connection was refused.</summary>
        Refused = -4,
        /// <summary>The operation's deadline passed; nothing received is lost.</summary>
        Timeout = -5,
        /// <summary>Timeout 0 was given and the operation cannot complete now.</summary>
        WouldBlock = -6,
        /// <summary>The peer closed or reset the connection, or sent DR/ER.</summary>
        Closed = -7,
        /// <summary>The peer refused the COTP connection with DR or ER.</summary>
        Rejected = -8,
        /// <summary>Malformed or unexpected TPKT/COTP data; the connection is closed.</summary>
        Protocol = -9,
        /// <summary>A message above a limit.</summary>
        TooLarge = -10,
        /// <summary>The caller's buffer is too small; the message stays queued.</summary>
        BufferTooSmall = -11,
        /// <summary>Other operating-system error.</summary>
        Io = -12,
        /// <summary>Internal error caught at the boundary; the handle is poisoned.</summary>
        Panic = -13,
        /// <summary>The handle is unusable after an internal error.</summary>
        Poisoned = -14,
        /// <summary>TLS failed: handshake, certificate, a bad record or an alert.</summary>
        Tls = -15,
    }

    /// <summary>Where the last Connect or Reconnect of a connection failed
    /// (iso_get_connect_phase).</summary>
    public enum IsoConnectPhase
    {
        /// <summary>The last connect succeeded, or none ran (also: the failure was no connect).</summary>
        None = Native.ISO_PHASE_NONE,
        /// <summary>Resolving the host name failed.</summary>
        Resolve = Native.ISO_PHASE_RESOLVE,
        /// <summary>No address completed the TCP connect: the PLC is unreachable.</summary>
        Tcp = Native.ISO_PHASE_TCP,
        /// <summary>TCP was up and the CR sent, but no CC confirmed it: the PLC is reachable and
        /// refused (usually TSAP, rack or slot) or did not answer.</summary>
        Cotp = Native.ISO_PHASE_COTP,
    }

    /// <summary>A call into libisotcp failed. <see cref="Code"/> is the result code,
    /// <see cref="Detail"/> the library's message for it (the handle's last error),
    /// <see cref="OsError"/> the OS error code behind it and, for a failed Connect or
    /// Reconnect, <see cref="Phase"/> the phase it stopped in; both are read right after the
    /// failing call.</summary>
    public class IsoException : IOException
    {
        public IsoError Code { get; private set; }
        public string Detail { get; private set; }

        /// <summary>The OS error code behind the failure (errno; the WSA code on Windows), e.g.
        /// 111 (ECONNREFUSED) for a refused connect; 0 when it had none.</summary>
        public int OsError { get; private set; }

        /// <summary>For a failed <see cref="IsoConnection.Connect"/> or
        /// <see cref="IsoConnection.Reconnect"/>: the phase it stopped in. None for every other
        /// failure.</summary>
        public IsoConnectPhase Phase { get; private set; }

        /// <summary>The code as the library's negative number.</summary>
        public int NativeCode { get { return (int)Code; } }

        public IsoException(IsoError code, string detail)
            : this(code, detail, 0, IsoConnectPhase.None)
        {
        }

        public IsoException(IsoError code, string detail, int osError, IsoConnectPhase phase)
            : base(Format(code, detail))
        {
            Code = code;
            Detail = detail ?? "";
            OsError = osError;
            Phase = phase;
        }

        static string Format(IsoError code, string detail)
        {
            string text = Native.StrError((int)code);
            return string.IsNullOrEmpty(detail) ? text : text + ": " + detail;
        }

        /// <summary>The exception for a code: <see cref="IsoTimeoutException"/> for Timeout and
        /// WouldBlock, <see cref="IsoTlsException"/> for Tls, <see cref="IsoException"/> for the
        /// rest.</summary>
        public static IsoException For(int code, string detail)
        {
            return For(code, detail, 0, IsoConnectPhase.None);
        }

        /// <summary>As <see cref="For(int, string)"/>, with the OS error and connect phase.</summary>
        public static IsoException For(int code, string detail, int osError, IsoConnectPhase phase)
        {
            var error = (IsoError)code;
            if (error == IsoError.Timeout || error == IsoError.WouldBlock)
                return new IsoTimeoutException(error, detail, osError, phase);
            if (error == IsoError.Tls)
                return new IsoTlsException(detail, osError);
            return new IsoException(error, detail, osError, phase);
        }
    }

    /// <summary>A deadline passed (Timeout), or a zero timeout could not complete at once
    /// (WouldBlock). Nothing received is lost: the connection stays usable, except after a send
    /// that stopped part way (the library closes the connection then).</summary>
    public class IsoTimeoutException : IsoException
    {
        public IsoTimeoutException(IsoError code, string detail) : base(code, detail) { }

        public IsoTimeoutException(IsoError code, string detail, int osError, IsoConnectPhase phase)
            : base(code, detail, osError, phase) { }
    }

    /// <summary>TLS failed (Code Tls): the handshake, the peer's certificate (not the pinned
    /// one, no chain to the CA file), a bad record or an alert; <see cref="IsoException.Detail"/>
    /// says which. A failed handshake closes the connection.</summary>
    public class IsoTlsException : IsoException
    {
        public IsoTlsException(string detail) : base(IsoError.Tls, detail) { }

        public IsoTlsException(string detail, int osError)
            : base(IsoError.Tls, detail, osError, IsoConnectPhase.None) { }
    }
}
