using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Win32.SafeHandles;

namespace Isotcp
{
    /// <summary>An iso_listener*, released with iso_listener_destroy once, after the last call
    /// using it has returned.</summary>
    public sealed class IsoListenerHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        readonly List<object> callbacks = new List<object>();

        IsoListenerHandle() : base(true) { }

        internal void KeepAlive(object callback)
        {
            lock (callbacks) callbacks.Add(callback);
        }

        protected override bool ReleaseHandle()
        {
            Native.iso_listener_destroy(handle);
            return true;
        }
    }

    /// <summary>
    /// The passive side (a PLC or gateway): listens, validates each client's CR and answers it
    /// with a CC. <see cref="Accept"/> returns connected <see cref="IsoConnection"/>s. Setters
    /// may be called at any time; Accept calls are serialised. Disposing while another thread
    /// is in Accept wakes that Accept (it fails) and then releases the native listener.
    /// </summary>
    public sealed class IsoListener : IDisposable
    {
        readonly IsoListenerHandle handle;
        int disposed;

        /// <summary>Listens on <paramref name="bindHost"/> ("127.0.0.1", "0.0.0.0", "::" or null
        /// for every IPv6 and IPv4 address) and <paramref name="port"/> (0 picks a free one).</summary>
        public IsoListener(string bindHost, ushort port)
        {
            IsoListenerHandle h;
            int rc = Native.iso_listen(Native.Utf8z(bindHost), port, out h);
            if (rc != Native.ISO_OK)
            {
                string detail = Native.ThreadLastError();
                int osError = Native.ThreadLastOsError();
                h.Dispose();
                throw IsoException.For(rc, detail, osError, IsoConnectPhase.None);
            }
            handle = h;
        }

        /// <summary>The native handle, for calls through <see cref="Native"/>.</summary>
        public IsoListenerHandle Handle { get { return handle; } }

        /// <summary>The port listened on.</summary>
        public ushort Port
        {
            get
            {
                ushort port;
                Check(Native.iso_listener_port(H, out port));
                return port;
            }
        }

        /// <summary>Waits up to <paramref name="timeoutMs"/> for a client with a valid, accepted
        /// CR and returns its connection. IsoTimeoutException when none came (Code WouldBlock
        /// for timeout 0). Refused clients get a DR and are counted in <see cref="RefusedCount"/>;
        /// the wait goes on.</summary>
        public IsoConnection Accept(int timeoutMs)
        {
            IsoConnectionHandle conn;
            int rc = Native.iso_accept(H, Native.TimeoutMs(timeoutMs), out conn);
            if (rc != Native.ISO_OK)
            {
                conn.Dispose();
                Check(rc);
            }
            return new IsoConnection(conn);
        }

        /// <summary>As <see cref="Accept"/>, but false instead of IsoTimeoutException.</summary>
        public bool TryAccept(int timeoutMs, out IsoConnection connection)
        {
            IsoConnectionHandle conn;
            int rc = Native.iso_accept(H, Native.TimeoutMs(timeoutMs), out conn);
            if (rc != Native.ISO_OK)
            {
                conn.Dispose();
                connection = null;
                if (rc == (int)IsoError.Timeout || rc == (int)IsoError.WouldBlock) return false;
                Check(rc);
            }
            connection = new IsoConnection(conn);
            return true;
        }

        /// <summary>Largest TPDU size granted: 128..8192 (default 8192).</summary>
        public void SetMaxTpdu(int size)
        {
            if (size <= 0) throw new ArgumentOutOfRangeException("size");
            Check(Native.iso_listener_set_max_tpdu(H, (uint)size));
        }

        /// <summary>How long a client has to send its CR (1..3600000 ms, default 5000).</summary>
        public void SetCrTimeout(int timeoutMs)
        {
            if (timeoutMs <= 0) throw new ArgumentOutOfRangeException("timeoutMs");
            Check(Native.iso_listener_set_cr_timeout(H, (uint)timeoutMs));
        }

        /// <summary>Most handshakes waiting for their CR (1..65536, default 64).</summary>
        public void SetMaxPending(int count)
        {
            if (count <= 0) throw new ArgumentOutOfRangeException("count");
            Check(Native.iso_listener_set_max_pending(H, (uint)count));
        }

        /// <summary>Maximum message size of connections accepted from now on.</summary>
        public void SetMaxMessage(int bytes)
        {
            if (bytes <= 0) throw new ArgumentOutOfRangeException("bytes");
            Check(Native.iso_listener_set_max_message(H, (uint)bytes));
        }

        /// <summary>Send-queue limit of connections accepted from now on.</summary>
        public void SetMaxQueued(int bytes)
        {
            if (bytes < 0) throw new ArgumentOutOfRangeException("bytes");
            Check(Native.iso_listener_set_max_queued(H, (uint)bytes));
        }

        /// <summary>Adds a called TSAP to the ones served; once the list has entries, a CR
        /// calling another TSAP is refused with DR reason 0x03.</summary>
        public void AllowTsap(byte[] tsap)
        {
            if (tsap == null) throw new ArgumentNullException("tsap");
            Check(Native.iso_listener_allow_tsap(H, tsap, Native.Size(tsap.Length)));
        }

        /// <summary>Adds a 16-bit called TSAP (e.g. 0x0102).</summary>
        public void AllowTsap(ushort tsap)
        {
            AllowTsap(new byte[] { (byte)(tsap >> 8), (byte)tsap });
        }

        /// <summary>Decides on each valid CR after the TSAP list: the function gets the calling
        /// and called TSAPs and returns 0 to accept or 1..255 to refuse with that DR reason. It
        /// runs on the thread calling Accept; an exception it throws refuses with 0x03. Null
        /// removes it.</summary>
        public void SetFilter(Func<byte[], byte[], int> filter)
        {
            if (filter == null)
            {
                Check(Native.iso_listener_set_filter(H, null, IntPtr.Zero));
                return;
            }
            IsoCrFilterFn thunk = delegate (IntPtr user, IntPtr calling, UIntPtr callingLen, IntPtr called, UIntPtr calledLen)
            {
                try
                {
                    return filter(Copy(calling, callingLen), Copy(called, calledLen));
                }
                catch (Exception)
                {
                    return 0x03;
                }
            };
            handle.KeepAlive(thunk);
            Check(Native.iso_listener_set_filter(H, thunk, IntPtr.Zero));
        }

        /// <summary>Handshakes refused or dropped so far.</summary>
        public ulong RefusedCount
        {
            get
            {
                ulong n;
                Check(Native.iso_listener_refused_count(H, out n));
                return n;
            }
        }

        /// <summary>The last error or refusal, e.g. "...: CR refused with DR reason 0x03 ...".</summary>
        public string LastError
        {
            get { return Native.ReadMessage(delegate (byte[] b, UIntPtr c, out UIntPtr n) { return Native.iso_listener_last_error(H, b, c, out n); }); }
        }

        /// <summary>A descriptor that becomes readable when Accept(0) may have work (on Linux an
        /// epoll descriptor); not to be read, closed or modified.</summary>
        public long EventHandle
        {
            get
            {
                long fd;
                Check(Native.iso_listener_get_fd(H, out fd));
                return fd;
            }
        }

        /// <summary>Milliseconds until the earliest pending handshake times out, or
        /// uint.MaxValue when none is pending.</summary>
        public uint NextTimeoutMs
        {
            get
            {
                uint ms;
                Check(Native.iso_listener_next_timeout(H, out ms));
                return ms;
            }
        }

        /// <summary>Stops listening; connections already accepted stay open.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0) return;
            // Wakes an Accept in progress on another thread (it fails at once), so the native
            // listener is released now rather than at that Accept's timeout.
            if (!handle.IsClosed) Native.iso_listener_shutdown(handle);
            handle.Dispose();
        }

        IsoListenerHandle H
        {
            get
            {
                if (disposed != 0) throw new ObjectDisposedException("IsoListener");
                return handle;
            }
        }

        void Check(int rc)
        {
            if (rc >= 0) return;
            string detail;
            try
            {
                detail = LastError;
            }
            catch (ObjectDisposedException)
            {
                detail = "";
            }
            // The listener keeps no OS error of its own; this thread's is the failed call's.
            throw IsoException.For(rc, detail, Native.ThreadLastOsError(), IsoConnectPhase.None);
        }

        static byte[] Copy(IntPtr p, UIntPtr len)
        {
            var bytes = new byte[(int)len.ToUInt64()];
            if (bytes.Length > 0) Marshal.Copy(p, bytes, 0, bytes.Length);
            return bytes;
        }
    }
}
