using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Win32.SafeHandles;

namespace Isotcp
{
    /// <summary>An iso_conn*. Released with iso_destroy once, after the last call using it has
    /// returned (SafeHandle reference counting), also when only the finalizer gets to it.</summary>
    public sealed class IsoConnectionHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        // Delegates handed to the library for this handle; referenced here so they live exactly
        // as long as the native handle may call them.
        readonly List<object> callbacks = new List<object>();

        IsoConnectionHandle() : base(true) { }

        internal void KeepAlive(object callback)
        {
            lock (callbacks) callbacks.Add(callback);
        }

        protected override bool ReleaseHandle()
        {
            Native.iso_destroy(handle);
            return true;
        }
    }

    /// <summary>Direction of a traced frame.</summary>
    public enum IsoTraceDirection
    {
        Received = Native.ISO_TRACE_RECEIVED,
        Sent = Native.ISO_TRACE_SENT,
    }

    /// <summary>The caller's buffer is too small for the next message, which stays queued;
    /// <see cref="Needed"/> is its size.</summary>
    public class IsoBufferTooSmallException : IsoException
    {
        public long Needed { get; private set; }

        public IsoBufferTooSmallException(long needed, string detail)
            : base(IsoError.BufferTooSmall, detail)
        {
            Needed = needed;
        }

        public IsoBufferTooSmallException(long needed, string detail, int osError)
            : base(IsoError.BufferTooSmall, detail, osError, IsoConnectPhase.None)
        {
            Needed = needed;
        }
    }

    /// <summary>
    /// An ISO-on-TCP connection (RFC 1006 TPKT + ISO 8073 class 0 COTP), client side or accepted
    /// by an <see cref="IsoListener"/>. Messages are whole S7 PDUs: sends are segmented into DTs
    /// of the negotiated TPDU size, receives are reassembled.
    ///
    /// Threads: one thread may send while another receives or polls; <see cref="Disconnect"/>
    /// and <see cref="Dispose"/> from any thread wake a blocked call, which then throws
    /// IsoException with Code State. Settings must be made before <see cref="Connect"/>.
    /// Timeouts are milliseconds; -1 (Timeout.Infinite) means no limit.
    /// </summary>
    public sealed class IsoConnection : IDisposable
    {
        public const int DefaultTpduSize = 1024;

        /// <summary><see cref="UserTimeoutMs"/> value (the default) making the bound follow the
        /// keep-alive settings: idle + interval x count while keep-alive is on.</summary>
        public const int UserTimeoutFromKeepAlive = -1;

        /// <summary>The default of <see cref="ConnectAttemptDelayMs"/> (RFC 8305).</summary>
        public const int DefaultConnectAttemptDelayMs = 250;

        readonly IsoConnectionHandle handle;
        readonly object receiveLock = new object();
        byte[] receiveBuffer;
        int disposed;
        int requestedTpdu = DefaultTpduSize;
        int sendTimeoutMs = 5000;
        int maxMessage = 65536;
        int userTimeoutMs = UserTimeoutFromKeepAlive;
        int connectAttemptDelayMs = DefaultConnectAttemptDelayMs;

        /// <summary>Creates a connection to <paramref name="host"/> (name, IPv4 or IPv6) and TCP
        /// <paramref name="port"/>; no network I/O until <see cref="Connect"/>. Defaults: local
        /// TSAP 0x0100, remote 0x0102, TPDU 1024, send timeout 5000 ms.</summary>
        public IsoConnection(string host, ushort port = 102)
        {
            if (host == null) throw new ArgumentNullException("host");
            IsoConnectionHandle h;
            int rc = Native.iso_create(Native.Utf8z(host), port, out h);
            if (rc != Native.ISO_OK)
            {
                string detail = Native.ThreadLastError();
                int osError = Native.ThreadLastOsError();
                h.Dispose();
                throw IsoException.For(rc, detail, osError, IsoConnectPhase.None);
            }
            handle = h;
            Host = host;
            Port = port;
        }

        internal IsoConnection(IsoConnectionHandle accepted)
        {
            handle = accepted;
            IsAccepted = true;
        }

        /// <summary>The host given at creation (null for an accepted connection).</summary>
        public string Host { get; private set; }

        /// <summary>The port given at creation (0 for an accepted connection).</summary>
        public ushort Port { get; private set; }

        /// <summary>True for a connection returned by <see cref="IsoListener.Accept"/>.</summary>
        public bool IsAccepted { get; private set; }

        /// <summary>The native handle, for calls through <see cref="Native"/>.</summary>
        public IsoConnectionHandle Handle { get { return handle; } }

        // ------------------------------------------------------------------------------------
        // Settings (before Connect)
        // ------------------------------------------------------------------------------------

        /// <summary>16-bit TSAPs, e.g. 0x0100 and 0x0102 (rack 0, slot 2).</summary>
        public void SetTsap(ushort local, ushort remote)
        {
            Check(Native.iso_set_tsap(H, local, remote));
        }

        /// <summary>TSAPs as 1..32 bytes each, e.g. "SIMATIC-ROOT-HMI" for S7CommPlus.</summary>
        public void SetTsap(byte[] local, byte[] remote)
        {
            if (local == null) throw new ArgumentNullException("local");
            if (remote == null) throw new ArgumentNullException("remote");
            Check(Native.iso_set_tsap_bytes(H, local, Native.Size(local.Length), remote, Native.Size(remote.Length)));
        }

        /// <summary>The TPDU size offered in the CR: 128, 256, ..., 8192 (default 1024).</summary>
        public int RequestedTpduSize
        {
            get { return requestedTpdu; }
            set
            {
                if (value <= 0) throw new ArgumentOutOfRangeException("value");
                Check(Native.iso_set_tpdu_size(H, (uint)value));
                requestedTpdu = value;
            }
        }

        /// <summary>The TPDU size negotiated with the peer (throws with Code State when not
        /// connected).</summary>
        public int TpduSize
        {
            get
            {
                uint size;
                Check(Native.iso_get_tpdu_size(H, out size));
                return (int)size;
            }
        }

        /// <summary>Deadline of each send in ms (default 5000; 0: never wait).</summary>
        public int SendTimeoutMs
        {
            get { return sendTimeoutMs; }
            set
            {
                Check(Native.iso_set_send_timeout(H, Native.TimeoutMs(value)));
                sendTimeoutMs = value;
            }
        }

        /// <summary>Largest message sent or received, 128..16777216 bytes (default 65536).</summary>
        public int MaxMessage
        {
            get { return maxMessage; }
            set
            {
                if (value <= 0) throw new ArgumentOutOfRangeException("value");
                Check(Native.iso_set_max_message(H, (uint)value));
                maxMessage = value;
            }
        }

        /// <summary>Most DTs in one received message (default 4096).</summary>
        public void SetMaxFragments(int fragments)
        {
            if (fragments <= 0) throw new ArgumentOutOfRangeException("fragments");
            Check(Native.iso_set_max_fragments(H, (uint)fragments));
        }

        /// <summary>Send-queue limit of <see cref="QueueSend"/> (default 262144 bytes).</summary>
        public void SetMaxQueued(int bytes)
        {
            if (bytes < 0) throw new ArgumentOutOfRangeException("bytes");
            Check(Native.iso_set_max_queued(H, (uint)bytes));
        }

        /// <summary>How long sent data may stay unacknowledged before the system gives up on the
        /// connection (TCP_USER_TIMEOUT; whole seconds on Windows), so that a peer gone under a
        /// pending request fails Receive/Send with Code Io (OsError ETIMEDOUT) instead of after
        /// about 15 minutes of retransmissions: 1..2073600000 ms, 0 for the system's default,
        /// or <see cref="UserTimeoutFromKeepAlive"/> (-1, the default). IsoException Invalid
        /// above the range, ArgumentOutOfRangeException below -1.</summary>
        public int UserTimeoutMs
        {
            get { return userTimeoutMs; }
            set { SetUserTimeout(value); }
        }

        /// <summary>Sets <see cref="UserTimeoutMs"/>.</summary>
        public void SetUserTimeout(int timeoutMs)
        {
            if (timeoutMs < UserTimeoutFromKeepAlive)
                throw new ArgumentOutOfRangeException("timeoutMs", timeoutMs, "must be >= 0, or -1 to follow keep-alive");
            uint ms = timeoutMs == UserTimeoutFromKeepAlive ? Native.ISO_USER_TIMEOUT_FROM_KEEPALIVE : (uint)timeoutMs;
            Check(Native.iso_set_user_timeout(H, ms));
            userTimeoutMs = timeoutMs;
        }

        /// <summary>Delay between the starts of TCP connects to successive addresses of a host
        /// name with several (IPv6 and IPv4, a redundant CPU pair): 0..10000 ms (default 250).
        /// IsoException Invalid above the range.</summary>
        public int ConnectAttemptDelayMs
        {
            get { return connectAttemptDelayMs; }
            set
            {
                if (value < 0) throw new ArgumentOutOfRangeException("value", value, "must be >= 0");
                Check(Native.iso_set_connect_attempt_delay(H, (uint)value));
                connectAttemptDelayMs = value;
            }
        }

        /// <summary>TCP keep-alive (default on, 60 s idle, 10 s interval, 3 probes).</summary>
        public void SetKeepAlive(bool enable, int idleSeconds, int intervalSeconds, int count)
        {
            if (idleSeconds < 0 || intervalSeconds < 0 || count < 0)
                throw new ArgumentOutOfRangeException("keep-alive times and count must be >= 0");
            Check(Native.iso_set_keepalive(H, enable ? 1 : 0, (uint)idleSeconds, (uint)intervalSeconds, (uint)count));
        }

        /// <summary>Routing in python-snap7's encoding (CR parameters C6/C7).</summary>
        public void SetRouting(ushort subnetId, int destRack, int destSlot)
        {
            if (destRack < 0 || destRack > ushort.MaxValue) throw new ArgumentOutOfRangeException("destRack");
            if (destSlot < 0 || destSlot > ushort.MaxValue) throw new ArgumentOutOfRangeException("destSlot");
            Check(Native.iso_set_routing(H, subnetId, (ushort)destRack, (ushort)destSlot));
        }

        /// <summary>S7 routing through a Siemens gateway (28-byte extended TSAPs): subnet
        /// "0152-0013" is (0x0152, 0x0013); destAddr is the 1-byte MPI/PROFIBUS address or the
        /// 4-byte IPv4 address; connType 1 PG, 2 OP, 3..0x10 S7 basic.</summary>
        public void SetRoutingS7(ushort subnetHigh, ushort subnetLow, byte[] destAddr, byte connType, int destRack, int destSlot)
        {
            if (destAddr == null) throw new ArgumentNullException("destAddr");
            if (destRack < 0 || destRack > ushort.MaxValue) throw new ArgumentOutOfRangeException("destRack");
            if (destSlot < 0 || destSlot > ushort.MaxValue) throw new ArgumentOutOfRangeException("destSlot");
            Check(Native.iso_set_routing_s7(H, subnetHigh, subnetLow, destAddr, Native.Size(destAddr.Length),
                connType, (ushort)destRack, (ushort)destSlot));
        }

        // ------------------------------------------------------------------------------------
        // Connection
        // ------------------------------------------------------------------------------------

        /// <summary>Resolves, opens TCP and exchanges CR/CC within one deadline. Throws
        /// IsoException: Refused, Resolve, Closed (peer closed after the CR: usually a wrong
        /// TSAP), Rejected (DR/ER, reason in Detail), Protocol, Io, State (already connected);
        /// IsoTimeoutException when the deadline passed. The exception's Phase says where it
        /// stopped: Tcp (unreachable; OsError e.g. 111 ECONNREFUSED) or Cotp (reachable, ISO
        /// refused or unanswered).</summary>
        public void Connect(int timeoutMs)
        {
            CheckConnect(Native.iso_connect(H, Native.TimeoutMs(timeoutMs)));
        }

        /// <summary>Ends the connection (a DR first while COTP is up, so the PLC releases its
        /// side at once) and connects again with the same settings, all within one deadline;
        /// not connected: just connects. Errors as <see cref="Connect"/>; Code State on an
        /// accepted connection.</summary>
        public void Reconnect(int timeoutMs)
        {
            CheckConnect(Native.iso_reconnect(H, Native.TimeoutMs(timeoutMs)));
        }

        /// <summary>True when the connection can carry a new request; false when not connected
        /// or the peer has closed it. Never blocks, consumes nothing.</summary>
        public bool CheckConnection()
        {
            int rc = Native.iso_check_connection(H);
            if (rc < 0) Check(rc);
            return rc == 1;
        }

        /// <summary>Closes the connection (no DR: class 0 releases by closing TCP) and wakes
        /// calls blocked on it in other threads. The settings stay; Connect may be called again.</summary>
        public void Disconnect()
        {
            Check(Native.iso_disconnect(H));
        }

        // ------------------------------------------------------------------------------------
        // Data
        // ------------------------------------------------------------------------------------

        /// <summary>Sends one whole message within the send timeout.</summary>
        public void Send(byte[] data)
        {
            if (data == null) throw new ArgumentNullException("data");
            Send(data, 0, data.Length);
        }

        /// <summary>Sends <paramref name="count"/> bytes of <paramref name="data"/> from
        /// <paramref name="offset"/> as one whole message. IsoTimeoutException: nothing was
        /// sent and the connection is intact, or part was sent and the connection was closed.</summary>
        public void Send(byte[] data, int offset, int count)
        {
            CheckRange(data, offset, count);
            var pin = GCHandle.Alloc(data, GCHandleType.Pinned);
            try
            {
                IntPtr p = IntPtr.Add(pin.AddrOfPinnedObject(), offset);
                Check(Native.iso_send(H, p, Native.Size(count)));
            }
            finally
            {
                pin.Free();
            }
        }

        /// <summary>Sends one whole message without blocking: what the socket does not take is
        /// queued. False when the queue is full (nothing of this message was queued): wait for
        /// writability and <see cref="Flush"/>.</summary>
        public bool QueueSend(byte[] data, int offset, int count)
        {
            CheckRange(data, offset, count);
            var pin = GCHandle.Alloc(data, GCHandleType.Pinned);
            try
            {
                IntPtr p = IntPtr.Add(pin.AddrOfPinnedObject(), offset);
                int rc = Native.iso_queue_send(H, p, Native.Size(count));
                if (rc == (int)IsoError.WouldBlock) return false;
                Check(rc);
                return true;
            }
            finally
            {
                pin.Free();
            }
        }

        /// <summary>Writes queued bytes, waiting up to <paramref name="timeoutMs"/>; true when
        /// none remain, false when some are still queued.</summary>
        public bool Flush(int timeoutMs)
        {
            int rc = Native.iso_flush(H, Native.TimeoutMs(timeoutMs));
            if (rc == (int)IsoError.WouldBlock || rc == (int)IsoError.Timeout) return false;
            Check(rc);
            return true;
        }

        /// <summary>Queued bytes not yet written.</summary>
        public long SendPending
        {
            get
            {
                UIntPtr n;
                Check(Native.iso_get_send_pending(H, out n));
                return (long)n.ToUInt64();
            }
        }

        /// <summary>Waits up to <paramref name="timeoutMs"/> for a whole message: true when one
        /// is ready (the next Receive returns it at once), false when none completed in time.
        /// Throws when the connection is closed with nothing buffered, or has failed.</summary>
        public bool Poll(int timeoutMs)
        {
            int rc = Native.iso_poll(H, Native.TimeoutMs(timeoutMs));
            if (rc < 0) Check(rc);
            return rc == 1;
        }

        /// <summary>Receives one whole message into <paramref name="buffer"/> at
        /// <paramref name="offset"/> and returns its length. IsoTimeoutException when none
        /// arrived in time (nothing is lost; timeout 0 gives Code WouldBlock);
        /// IsoBufferTooSmallException when it does not fit in <paramref name="count"/> bytes
        /// (it stays queued); IsoException Closed when the peer closed and nothing is left.</summary>
        public int Receive(byte[] buffer, int offset, int count, int timeoutMs)
        {
            CheckRange(buffer, offset, count);
            uint ms = Native.TimeoutMs(timeoutMs);
            var pin = GCHandle.Alloc(buffer, GCHandleType.Pinned);
            try
            {
                IntPtr p = IntPtr.Add(pin.AddrOfPinnedObject(), offset);
                UIntPtr len;
                int rc = Native.iso_recv(H, p, Native.Size(count), out len, ms);
                if (rc == (int)IsoError.BufferTooSmall)
                    throw new IsoBufferTooSmallException((long)len.ToUInt64(), LastError, LastOsError);
                Check(rc);
                return (int)len.ToUInt64();
            }
            finally
            {
                pin.Free();
            }
        }

        /// <summary>Receives one whole message as a new array (see the other overload).</summary>
        public byte[] Receive(int timeoutMs)
        {
            lock (receiveLock)
            {
                if (receiveBuffer == null) receiveBuffer = new byte[Math.Max(maxMessage, 1)];
                while (true)
                {
                    try
                    {
                        int n = Receive(receiveBuffer, 0, receiveBuffer.Length, timeoutMs);
                        var message = new byte[n];
                        Buffer.BlockCopy(receiveBuffer, 0, message, 0, n);
                        return message;
                    }
                    catch (IsoBufferTooSmallException e)
                    {
                        receiveBuffer = new byte[e.Needed];
                    }
                }
            }
        }

        // ------------------------------------------------------------------------------------
        // Information
        // ------------------------------------------------------------------------------------

        /// <summary>The handle's last error message ("no error" before the first).</summary>
        public string LastError
        {
            get { return Native.ReadMessage(delegate (byte[] b, UIntPtr c, out UIntPtr n) { return Native.iso_last_error(H, b, c, out n); }); }
        }

        /// <summary>The OS error code behind the handle's last failure (errno; the WSA code on
        /// Windows), e.g. 111 (ECONNREFUSED); 0 when it had none or before the first.</summary>
        public int LastOsError
        {
            get
            {
                int code;
                Check(Native.iso_last_os_error(H, out code));
                return code;
            }
        }

        /// <summary>Where the last Connect or Reconnect failed; None after a successful one or
        /// before any.</summary>
        public IsoConnectPhase ConnectPhase
        {
            get
            {
                int phase;
                Check(Native.iso_get_connect_phase(H, out phase));
                return (IsoConnectPhase)phase;
            }
        }

        /// <summary>The socket (file descriptor) for select/poll/epoll; not to be read, written
        /// or closed. Throws with Code State when not connected.</summary>
        public long SocketHandle
        {
            get
            {
                long fd;
                Check(Native.iso_get_fd(H, out fd));
                return fd;
            }
        }

        /// <summary>The called TSAP (C2) of the connection.</summary>
        public byte[] RemoteTsap
        {
            get { return ReadTsap(true); }
        }

        /// <summary>The calling TSAP (C1) of the connection.</summary>
        public byte[] CallingTsap
        {
            get { return ReadTsap(false); }
        }

        byte[] ReadTsap(bool remote)
        {
            var buf = new byte[64];
            UIntPtr len;
            int rc = remote
                ? Native.iso_get_remote_tsap(H, buf, Native.Size(buf.Length), out len)
                : Native.iso_get_calling_tsap(H, buf, Native.Size(buf.Length), out len);
            Check(rc);
            var tsap = new byte[(int)len.ToUInt64()];
            Array.Copy(buf, tsap, tsap.Length);
            return tsap;
        }

        // ------------------------------------------------------------------------------------
        // Secure communication: TLS inside COTP
        // ------------------------------------------------------------------------------------

        /// <summary>Runs the TLS handshake within <paramref name="timeoutMs"/>: the client role
        /// after <see cref="Connect"/> (for S7CommPlus: after the plaintext InitSSL request and
        /// response), the server role on a connection <see cref="IsoListener.Accept"/> returned
        /// (which needs <see cref="IsoTlsConfig.SetIdentityFiles"/>). From then on Send and
        /// Receive carry TLS. Throws <see cref="IsoTlsException"/> when the handshake fails or
        /// the certificate is rejected (the connection is then closed), IsoException with Code
        /// Invalid when <paramref name="config"/> can verify nothing or TLS is already started,
        /// State when not connected. No other thread may send or receive on the connection
        /// while the handshake runs.</summary>
        public void StartTls(IsoTlsConfig config, int timeoutMs)
        {
            if (config == null) throw new ArgumentNullException("config");
            Check(Native.iso_start_tls(H, config.Handle, Native.TimeoutMs(timeoutMs)));
        }

        /// <summary>True when TLS is started on the current connection.</summary>
        public bool TlsActive
        {
            get
            {
                int rc = Native.iso_tls_active(H);
                Check(rc);
                return rc == 1;
            }
        }

        /// <summary><paramref name="length"/> (1..255) bytes from the TLS exporter (RFC 5705,
        /// RFC 8446 section 7.5) for <paramref name="label"/>; <paramref name="context"/> null
        /// means no context (S7CommPlus's password login uses label "EXPERIMENTAL_OMS", 32 bytes,
        /// no context), an empty array an empty one (different in TLS 1.2).</summary>
        public byte[] ExportKeyingMaterial(string label, int length, byte[] context = null)
        {
            if (label == null) throw new ArgumentNullException("label");
            return ExportKeyingMaterial(System.Text.Encoding.UTF8.GetBytes(label), length, context);
        }

        /// <summary>As <see cref="ExportKeyingMaterial(string, int, byte[])"/> with the label's
        /// bytes.</summary>
        public byte[] ExportKeyingMaterial(byte[] label, int length, byte[] context = null)
        {
            if (label == null) throw new ArgumentNullException("label");
            if (length < 1 || length > 255) throw new ArgumentOutOfRangeException("length", length, "must be 1..255");
            // An empty array may reach the library as NULL, which means "no context".
            byte[] ctx = context == null ? null : context.Length == 0 ? new byte[1] : context;
            var output = new byte[length];
            Check(Native.iso_tls_export_keying_material(H, label, Native.Size(label.Length), ctx,
                Native.Size(context == null ? 0 : context.Length), output, Native.Size(length)));
            return output;
        }

        /// <summary>The certificate (DER) the peer presented in the TLS handshake.</summary>
        public byte[] PeerCertificate()
        {
            UIntPtr needed;
            byte[] der = null;
            int rc = Native.iso_tls_peer_certificate(H, null, UIntPtr.Zero, out needed);
            while (rc == (int)IsoError.BufferTooSmall)
            {
                der = new byte[(int)needed.ToUInt64()];
                rc = Native.iso_tls_peer_certificate(H, der, Native.Size(der.Length), out needed);
            }
            Check(rc);
            if (der == null || der.Length != (int)needed.ToUInt64()) Array.Resize(ref der, (int)needed.ToUInt64());
            return der;
        }

        // ------------------------------------------------------------------------------------
        // Tracing
        // ------------------------------------------------------------------------------------

        /// <summary>Calls <paramref name="onFrame"/> with every TPKT frame sent or received
        /// (null removes it). It runs on the thread doing the I/O and must return promptly;
        /// exceptions it throws are swallowed (they cannot cross into the library).</summary>
        public void SetTrace(Action<IsoTraceDirection, byte[]> onFrame)
        {
            if (onFrame == null)
            {
                Check(Native.iso_set_trace(H, null, IntPtr.Zero));
                return;
            }
            IsoTraceFn thunk = delegate (IntPtr user, int direction, IntPtr frame, UIntPtr len)
            {
                try
                {
                    var bytes = new byte[(int)len.ToUInt64()];
                    Marshal.Copy(frame, bytes, 0, bytes.Length);
                    onFrame((IsoTraceDirection)direction, bytes);
                }
                catch (Exception)
                {
                }
            };
            handle.KeepAlive(thunk);
            Check(Native.iso_set_trace(H, thunk, IntPtr.Zero));
        }

        /// <summary>Writes every frame to a pcap file Wireshark decodes (null stops).</summary>
        public void SetTraceFile(string path)
        {
            Check(Native.iso_set_trace_file(H, Native.Utf8z(path)));
        }

        // ------------------------------------------------------------------------------------
        // Static helpers
        // ------------------------------------------------------------------------------------

        /// <summary>The S7 remote TSAP: (connType &lt;&lt; 8) | rack &lt;&lt; 5 | slot.</summary>
        public static ushort S7Tsap(int connType, int rack, int slot)
        {
            if (connType < 0 || connType > 255 || rack < 0 || rack > 255 || slot < 0 || slot > 255)
                throw new ArgumentOutOfRangeException("connType, rack and slot are bytes");
            ushort tsap;
            int rc = Native.iso_s7_tsap((byte)connType, (byte)rack, (byte)slot, out tsap);
            if (rc != Native.ISO_OK)
                throw IsoException.For(rc, Native.ThreadLastError(), Native.ThreadLastOsError(), IsoConnectPhase.None);
            return tsap;
        }

        /// <summary>The snap7 error value closest to a code, for code ported from snap7.</summary>
        public static int Snap7Error(IsoError code)
        {
            return Native.iso_snap7_error((int)code);
        }

        // ------------------------------------------------------------------------------------
        // Lifetime
        // ------------------------------------------------------------------------------------

        /// <summary>Disconnects (waking blocked calls) and releases the handle; the native
        /// handle is destroyed once no call is using it any more.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0) return;
            try
            {
                Native.iso_disconnect(handle);
            }
            catch (ObjectDisposedException)
            {
            }
            handle.Dispose();
        }

        IsoConnectionHandle H
        {
            get
            {
                if (disposed != 0) throw new ObjectDisposedException("IsoConnection");
                return handle;
            }
        }

        void Check(int rc)
        {
            if (rc >= 0) return;
            throw Failure(rc, false);
        }

        /// <summary>As Check, for Connect and Reconnect: the exception has the phase too.</summary>
        void CheckConnect(int rc)
        {
            if (rc >= 0) return;
            throw Failure(rc, true);
        }

        /// <summary>The exception of a failed call, with the handle's message, OS error and
        /// (for a connect) phase, read right after it.</summary>
        IsoException Failure(int rc, bool connect)
        {
            string detail = "";
            int osError = 0;
            int phase = Native.ISO_PHASE_NONE;
            try
            {
                IsoConnectionHandle h = H;
                detail = LastError;
                Native.iso_last_os_error(h, out osError);
                if (connect) Native.iso_get_connect_phase(h, out phase);
            }
            catch (ObjectDisposedException)
            {
            }
            return IsoException.For(rc, detail, osError, (IsoConnectPhase)phase);
        }

        static void CheckRange(byte[] data, int offset, int count)
        {
            if (data == null) throw new ArgumentNullException("data");
            if (offset < 0 || count < 0 || offset > data.Length - count)
                throw new ArgumentOutOfRangeException("offset/count outside the array");
        }
    }
}
