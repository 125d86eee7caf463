using System;
using Microsoft.Win32.SafeHandles;

namespace Isotcp
{
    /// <summary>An iso_tls_config*. Released with iso_tls_config_destroy once, after the last
    /// call using it has returned, also when only the finalizer gets to it.</summary>
    public sealed class IsoTlsConfigHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        IsoTlsConfigHandle() : base(true) { }

        protected override bool ReleaseHandle()
        {
            Native.iso_tls_config_destroy(handle);
            return true;
        }
    }

    /// <summary>
    /// What <see cref="IsoConnection.StartTls"/> verifies and presents (secure S7
    /// communication: TLS inside COTP). The peer is verified by a CA file or a SHA-256 pin of its
    /// certificate; with neither, and without the explicit <see cref="SetInsecure"/>(true),
    /// StartTls throws IsoException with Code Invalid. Files are read by StartTls, which copies
    /// the settings: the object may change or be disposed afterwards. Setters return the object,
    /// so they chain; a bad value throws IsoException with Code Invalid and the reason.
    /// </summary>
    public sealed class IsoTlsConfig : IDisposable
    {
        /// <summary>TLS 1.2, for <see cref="SetVersions"/>.</summary>
        public const ushort Tls12 = 0x0303;
        /// <summary>TLS 1.3, for <see cref="SetVersions"/>.</summary>
        public const ushort Tls13 = 0x0304;

        readonly IsoTlsConfigHandle handle;

        /// <summary>A configuration that verifies nothing yet.</summary>
        public IsoTlsConfig()
        {
            IsoTlsConfigHandle h;
            int rc = Native.iso_tls_config_create(out h);
            if (rc != Native.ISO_OK)
            {
                string detail = Native.ThreadLastError();
                h.Dispose();
                throw IsoException.For(rc, detail);
            }
            handle = h;
        }

        /// <summary>The native handle, for calls through <see cref="Native"/>.</summary>
        public IsoTlsConfigHandle Handle { get { return H; } }

        /// <summary>PEM file of CA certificates the peer's chain must verify against.</summary>
        public IsoTlsConfig SetCaFile(string pemPath) { return Set(Native.iso_tls_config_set_ca_file(H, Native.Utf8z(pemPath))); }

        /// <summary>The SHA-256 (32 bytes) of the peer's certificate (DER) that it must match.</summary>
        public IsoTlsConfig SetPinSha256(byte[] digest)
        {
            if (digest == null) throw new ArgumentNullException("digest");
            return Set(Native.iso_tls_config_set_pin_sha256(H, digest, Native.Size(digest.Length)));
        }

        /// <summary>true: accept any peer certificate (labs only: anyone on the path can read and
        /// change the traffic); false: verify (the default).</summary>
        public IsoTlsConfig SetInsecure(bool noVerification) { return Set(Native.iso_tls_config_set_insecure(H, noVerification ? 1 : 0)); }

        /// <summary>The name the peer's certificate must carry, also sent as SNI; null (the
        /// default): no name check, as PLC certificates rarely name their address.</summary>
        public IsoTlsConfig SetServerName(string name) { return Set(Native.iso_tls_config_set_server_name(H, Native.Utf8z(name))); }

        /// <summary>Our certificate chain and private key (PEM files): needed by the server role,
        /// optional for a client.</summary>
        public IsoTlsConfig SetIdentityFiles(string certChainPem, string keyPem)
        {
            return Set(Native.iso_tls_config_set_identity_files(H, Native.Utf8z(certChainPem), Native.Utf8z(keyPem)));
        }

        /// <summary>The versions allowed: <see cref="Tls12"/> to <see cref="Tls13"/> (the default
        /// both).</summary>
        public IsoTlsConfig SetVersions(ushort min, ushort max) { return Set(Native.iso_tls_config_set_versions(H, min, max)); }

        /// <summary>A file each session appends its secrets to (NSS key log format, for
        /// Wireshark); anyone who can read it can read the traffic.</summary>
        public IsoTlsConfig SetKeylogFile(string path) { return Set(Native.iso_tls_config_set_keylog_file(H, Native.Utf8z(path))); }

        /// <summary>The largest TLS record in bytes; 0 (the default) sizes each record to fill one
        /// DT of the negotiated TPDU. Larger records are split over several DTs of one
        /// message.</summary>
        public IsoTlsConfig SetMaxRecordSize(uint bytes) { return Set(Native.iso_tls_config_set_max_record_size(H, bytes)); }

        /// <summary>Frees the configuration (sessions started with it keep their copy).</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        IsoTlsConfigHandle H
        {
            get
            {
                if (handle.IsClosed) throw new ObjectDisposedException("IsoTlsConfig");
                return handle;
            }
        }

        /// <summary>The result of one iso_tls_config_set_* call: this object, or the exception
        /// with the library's reason. A new setter is one line calling this.</summary>
        IsoTlsConfig Set(int rc)
        {
            if (rc != Native.ISO_OK) throw IsoException.For(rc, Native.ThreadLastError());
            return this;
        }
    }
}
