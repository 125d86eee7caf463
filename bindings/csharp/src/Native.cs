// The C ABI of libisotcp (include/isotcp.h) as P/Invoke declarations, one per function.
//
// Conventions:
// - every import is Cdecl and names the library "isotcp" (libisotcp.so / isotcp.dll);
// - handles are SafeHandles, so a call in progress keeps its handle alive and iso_destroy /
//   iso_listener_destroy run exactly once, after the last call (SafeHandle reference counting);
// - the two functions returning static const char* (iso_strerror, iso_version) are declared
//   returning IntPtr and read with Marshal.PtrToStringAnsi: a string return would make the
//   marshaller free memory the library owns;
// - strings going in are passed as NUL-terminated UTF-8 byte arrays; size_t is UIntPtr;
// - callbacks are Cdecl delegates that the caller keeps referenced while installed.

using System;
using System.Runtime.InteropServices;

namespace Isotcp
{
    /// <summary>Receives a traced TPKT frame (valid only during the call).</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate void IsoTraceFn(IntPtr user, int direction, IntPtr frame, UIntPtr len);

    /// <summary>Decides on a CR: 0 accepts, 1..255 refuses with that DR reason.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    public delegate int IsoCrFilterFn(IntPtr user, IntPtr calling, UIntPtr callingLen, IntPtr called, UIntPtr calledLen);

    /// <summary>The raw C functions. Every int result is ISO_OK (0) or a negative code.</summary>
    public static class Native
    {
        public const string Library = "isotcp";

        public const int ISO_OK = 0;
        public const int ISO_TRACE_RECEIVED = 0;
        public const int ISO_TRACE_SENT = 1;
        public const uint ISO_USER_TIMEOUT_FROM_KEEPALIVE = uint.MaxValue;
        public const int ISO_PHASE_NONE = 0;
        public const int ISO_PHASE_RESOLVE = 1;
        public const int ISO_PHASE_TCP = 2;
        public const int ISO_PHASE_COTP = 3;

        /// <summary>The header version these declarations match (major, minor).</summary>
        public const int AbiMajor = 0;
        public const int AbiMinor = 1;

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr iso_strerror(int code);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr iso_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern uint iso_version_number();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_create(byte[] host, ushort port, out IsoConnectionHandle conn);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void iso_destroy(IntPtr conn);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_tsap(IsoConnectionHandle conn, ushort localTsap, ushort remoteTsap);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_tsap_bytes(IsoConnectionHandle conn, byte[] local, UIntPtr localLen, byte[] remote, UIntPtr remoteLen);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_tpdu_size(IsoConnectionHandle conn, uint size);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_routing(IsoConnectionHandle conn, ushort subnetId, ushort destRack, ushort destSlot);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_routing_s7(IsoConnectionHandle conn, ushort subnetHigh, ushort subnetLow,
            byte[] destAddr, UIntPtr destAddrLen, byte connType, ushort destRack, ushort destSlot);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_send_timeout(IsoConnectionHandle conn, uint timeoutMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_max_message(IsoConnectionHandle conn, uint bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_max_fragments(IsoConnectionHandle conn, uint fragments);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_keepalive(IsoConnectionHandle conn, int enable, uint idleS, uint intervalS, uint count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_connect(IsoConnectionHandle conn, uint timeoutMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_send(IsoConnectionHandle conn, IntPtr data, UIntPtr len);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_poll(IsoConnectionHandle conn, uint timeoutMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_recv(IsoConnectionHandle conn, IntPtr buf, UIntPtr cap, out UIntPtr outLen, uint timeoutMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_check_connection(IsoConnectionHandle conn);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_disconnect(IsoConnectionHandle conn);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_config_create(out IsoTlsConfigHandle cfg);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void iso_tls_config_destroy(IntPtr cfg);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_config_set_ca_file(IsoTlsConfigHandle cfg, byte[] pemPath);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_config_set_pin_sha256(IsoTlsConfigHandle cfg, byte[] digest, UIntPtr len);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_config_set_insecure(IsoTlsConfigHandle cfg, int noVerification);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_config_set_server_name(IsoTlsConfigHandle cfg, byte[] name);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_config_set_identity_files(IsoTlsConfigHandle cfg, byte[] certChainPem, byte[] keyPem);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_config_set_versions(IsoTlsConfigHandle cfg, ushort min, ushort max);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_config_set_keylog_file(IsoTlsConfigHandle cfg, byte[] path);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_config_set_max_record_size(IsoTlsConfigHandle cfg, uint bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_start_tls(IsoConnectionHandle conn, IsoTlsConfigHandle cfg, uint timeoutMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_active(IsoConnectionHandle conn);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_export_keying_material(IsoConnectionHandle conn, byte[] label, UIntPtr labelLen, byte[] context, UIntPtr contextLen, [Out] byte[] output, UIntPtr outLen);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_tls_peer_certificate(IsoConnectionHandle conn, [Out] byte[] buf, UIntPtr cap, out UIntPtr outNeeded);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_get_tpdu_size(IsoConnectionHandle conn, out uint size);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_get_fd(IsoConnectionHandle conn, out long fd);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_get_remote_tsap(IsoConnectionHandle conn, [Out] byte[] buf, UIntPtr cap, out UIntPtr outLen);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_get_calling_tsap(IsoConnectionHandle conn, [Out] byte[] buf, UIntPtr cap, out UIntPtr outLen);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_last_error(IsoConnectionHandle conn, [Out] byte[] buf, UIntPtr cap, out UIntPtr needed);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_thread_last_error([Out] byte[] buf, UIntPtr cap, out UIntPtr needed);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_reconnect(IsoConnectionHandle conn, uint timeoutMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_user_timeout(IsoConnectionHandle conn, uint timeoutMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_connect_attempt_delay(IsoConnectionHandle conn, uint delayMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_get_connect_phase(IsoConnectionHandle conn, out int phase);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_last_os_error(IsoConnectionHandle conn, out int code);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_thread_last_os_error(out int code);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_s7_tsap(byte connType, byte rack, byte slot, out ushort tsap);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listen(byte[] bindHost, ushort port, out IsoListenerHandle listener);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void iso_listener_destroy(IntPtr listener);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_shutdown(IsoListenerHandle listener);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_port(IsoListenerHandle listener, out ushort port);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_accept(IsoListenerHandle listener, uint timeoutMs, out IsoConnectionHandle conn);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_get_fd(IsoListenerHandle listener, out long fd);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_next_timeout(IsoListenerHandle listener, out uint ms);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_set_max_tpdu(IsoListenerHandle listener, uint size);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_set_cr_timeout(IsoListenerHandle listener, uint timeoutMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_set_max_pending(IsoListenerHandle listener, uint count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_set_max_queued(IsoListenerHandle listener, uint bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_set_max_message(IsoListenerHandle listener, uint bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_allow_tsap(IsoListenerHandle listener, byte[] tsap, UIntPtr len);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_set_filter(IsoListenerHandle listener, IsoCrFilterFn filter, IntPtr user);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_refused_count(IsoListenerHandle listener, out ulong count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_listener_last_error(IsoListenerHandle listener, [Out] byte[] buf, UIntPtr cap, out UIntPtr needed);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_queue_send(IsoConnectionHandle conn, IntPtr data, UIntPtr len);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_flush(IsoConnectionHandle conn, uint timeoutMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_get_send_pending(IsoConnectionHandle conn, out UIntPtr pending);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_max_queued(IsoConnectionHandle conn, uint bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_snap7_error(int code);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_trace(IsoConnectionHandle conn, IsoTraceFn callback, IntPtr user);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int iso_set_trace_file(IsoConnectionHandle conn, byte[] path);

        // ------------------------------------------------------------------------------------
        // Helpers
        // ------------------------------------------------------------------------------------

        /// <summary>The library's static text for a code (never freed here: it is static).</summary>
        public static string StrError(int code)
        {
            return Marshal.PtrToStringAnsi(iso_strerror(code)) ?? "";
        }

        /// <summary>The library version, e.g. "0.1.0".</summary>
        public static string Version()
        {
            return Marshal.PtrToStringAnsi(iso_version()) ?? "";
        }

        /// <summary>A string as a NUL-terminated UTF-8 array (null stays null).</summary>
        public static byte[] Utf8z(string s)
        {
            if (s == null) return null;
            var bytes = new byte[System.Text.Encoding.UTF8.GetByteCount(s) + 1];
            System.Text.Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
            return bytes;
        }

        /// <summary>A size_t from an int that is known to be non-negative.</summary>
        public static UIntPtr Size(int n)
        {
            return new UIntPtr((uint)n);
        }

        /// <summary>A timeout in milliseconds for the library: -1 (Timeout.Infinite) waits as long
        /// as the library can (uint.MaxValue ms); other negative values are invalid.</summary>
        public static uint TimeoutMs(int ms)
        {
            if (ms == -1) return uint.MaxValue;
            if (ms < 0) throw new ArgumentOutOfRangeException("timeoutMs", ms, "must be >= 0, or -1 for no limit");
            return (uint)ms;
        }

        /// <summary>The delegate shape of the last-error functions: (buf, cap, out needed).</summary>
        public delegate int MessageFetch(byte[] buf, UIntPtr cap, out UIntPtr needed);

        /// <summary>Runs a last-error function (size query, then copy) and decodes the text.</summary>
        public static string ReadMessage(MessageFetch fetch)
        {
            UIntPtr needed;
            fetch(null, UIntPtr.Zero, out needed);
            for (int attempt = 0; attempt < 8; attempt++)
            {
                int cap = Math.Max(1, (int)needed.ToUInt64());
                var buf = new byte[cap];
                int rc = fetch(buf, Size(cap), out needed);
                if (rc == ISO_OK)
                {
                    int len = Array.IndexOf(buf, (byte)0);
                    return System.Text.Encoding.UTF8.GetString(buf, 0, len < 0 ? buf.Length : len);
                }
                if (rc != (int)IsoError.BufferTooSmall) return "";
                // The message changed between the size query and the copy: again, larger.
            }
            return "";
        }

        /// <summary>The calling thread's last error (iso_create and iso_listen report here).</summary>
        public static string ThreadLastError()
        {
            return ReadMessage(iso_thread_last_error);
        }

        /// <summary>The OS error code of the calling thread's last failure (0 when it had none).</summary>
        public static int ThreadLastOsError()
        {
            int code;
            return iso_thread_last_os_error(out code) == ISO_OK ? code : 0;
        }
    }
}
