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
    }

    /// <summary>A call into libisotcp failed. <see cref="Code"/> is the result code,
    /// <see cref="Detail"/> the library's message for it (the handle's last error).</summary>
    public class IsoException : IOException
    {
        public IsoError Code { get; private set; }
        public string Detail { get; private set; }

        /// <summary>The code as the library's negative number.</summary>
        public int NativeCode { get { return (int)Code; } }

        public IsoException(IsoError code, string detail)
            : base(Format(code, detail))
        {
            Code = code;
            Detail = detail ?? "";
        }

        static string Format(IsoError code, string detail)
        {
            string text = Native.StrError((int)code);
            return string.IsNullOrEmpty(detail) ? text : text + ": " + detail;
        }

        /// <summary>The exception for a code: <see cref="IsoTimeoutException"/> for Timeout and
        /// WouldBlock, <see cref="IsoException"/> for the rest.</summary>
        public static IsoException For(int code, string detail)
        {
            var error = (IsoError)code;
            if (error == IsoError.Timeout || error == IsoError.WouldBlock)
                return new IsoTimeoutException(error, detail);
            return new IsoException(error, detail);
        }
    }

    /// <summary>A deadline passed (Timeout), or a zero timeout could not complete at once
    /// (WouldBlock). Nothing received is lost: the connection stays usable, except after a send
    /// that stopped part way (the library closes the connection then).</summary>
    public class IsoTimeoutException : IsoException
    {
        public IsoTimeoutException(IsoError code, string detail) : base(code, detail) { }
    }
}
