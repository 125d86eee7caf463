// TLS inside COTP through the C# binding (IsoTlsConfig, IsoConnection.StartTls and what a started
// session offers), against s7commplus's S7-1500 emulator (tests/peers/s7commplus_server.py:
// protocol V2, Python's ssl module on the other side), which tests/csharp_binding.rs starts and
// names in ISOTCP_S7CP_PORT, ISOTCP_S7CP_PIN (SHA-256 of its certificate, hex) and
// ISOTCP_S7CP_CERT (the certificate, PEM; its key is plc.key beside it).
//
// Each session connects with the HMI TSAPs, exchanges the plaintext InitSSL request and response,
// starts TLS and sends encrypted CreateObject requests, whose answers carry a new session.

using System;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using Isotcp;

static partial class BindingTests
{
    const ushort InitSsl = 0x05B3;
    const ushort CreateObject = 0x04CA;

    sealed class SecurePeer
    {
        public ushort Port;
        public byte[] Pin;
        public string CertPath;
    }

    static SecurePeer Peer()
    {
        string port = Environment.GetEnvironmentVariable("ISOTCP_S7CP_PORT");
        string pin = Environment.GetEnvironmentVariable("ISOTCP_S7CP_PIN");
        string cert = Environment.GetEnvironmentVariable("ISOTCP_S7CP_CERT");
        if (string.IsNullOrEmpty(port) || string.IsNullOrEmpty(pin) || string.IsNullOrEmpty(cert))
        {
            string why = "no s7commplus emulator given (ISOTCP_S7CP_PORT, _PIN, _CERT)";
            if (requirePeers) throw new Exception("--require-peers and " + why);
            throw new SkipException(why);
        }
        var digest = new byte[pin.Length / 2];
        for (int i = 0; i < digest.Length; i++) digest[i] = Convert.ToByte(pin.Substring(2 * i, 2), 16);
        return new SecurePeer { Port = ushort.Parse(port), Pin = digest, CertPath = cert };
    }

    /// <summary>An S7CommPlus request with no data: header 72 01 len, the 14-byte request
    /// header, 4 bytes of fill, trailer 72 01 00 00.</summary>
    static byte[] S7cpRequest(ushort function, ushort sequence, uint session, byte flags)
    {
        return new byte[]
        {
            0x72, 0x01, 0x00, 0x12, 0x31, 0x00, 0x00, (byte)(function >> 8), (byte)function, 0x00, 0x00,
            (byte)(sequence >> 8), (byte)sequence, (byte)(session >> 24), (byte)(session >> 16),
            (byte)(session >> 8), (byte)session, flags, 0, 0, 0, 0, 0x72, 0x01, 0x00, 0x00,
        };
    }

    static void AssertResponse(byte[] r, byte version, ushort function, ushort sequence)
    {
        Assert(r.Length >= 14 && r[0] == 0x72 && r[4] == 0x32, "an S7CommPlus response: " + Hex(r));
        Equal(version, r[1], "protocol version");
        Equal(function, (ushort)(r[7] << 8 | r[8]), "function");
        Equal(sequence, (ushort)(r[11] << 8 | r[12]), "sequence");
    }

    /// <summary>A connection that has exchanged the plaintext InitSSL request and response.</summary>
    static IsoConnection ConnectHmi(SecurePeer peer)
    {
        var c = new IsoConnection("127.0.0.1", peer.Port);
        try
        {
            c.SetTsap(new byte[] { 0x06, 0x00 }, Encoding.ASCII.GetBytes("SIMATIC-ROOT-HMI"));
            c.Connect(5000);
            c.Send(S7cpRequest(InitSsl, 0, 0, 0x30));
            AssertResponse(c.Receive(5000), 0x02, InitSsl, 0);
            Assert(!c.TlsActive, "no TLS before StartTls");
            return c;
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    /// <summary>An encrypted CreateObject: return value 0 and one (non-zero) object id.</summary>
    static void AssertSessionCreated(IsoConnection c, ushort sequence)
    {
        c.Send(S7cpRequest(CreateObject, sequence, 288, 0x36));
        byte[] r = c.Receive(5000);
        AssertResponse(r, 0x02, CreateObject, sequence);
        Assert(r.Length > 17 && r[14] == 0x00 && r[15] == 0x01 && r[16] != 0x00, "a new session: " + Hex(r));
    }

    static byte[] PemToDer(string path)
    {
        var base64 = string.Concat(File.ReadAllLines(path).Where(l => !l.StartsWith("-----")));
        return Convert.FromBase64String(base64);
    }

    static void TlsConfigErrors()
    {
        using (var cfg = new IsoTlsConfig())
        {
            Equal(IsoError.Invalid, Throws<IsoException>(() => cfg.SetPinSha256(new byte[31]), "31-byte pin").Code, "code");
            Equal(IsoError.Invalid, Throws<IsoException>(() => cfg.SetVersions(IsoTlsConfig.Tls13, IsoTlsConfig.Tls12),
                "min above max").Code, "code");
            Equal(IsoError.Invalid, Throws<IsoException>(() => cfg.SetVersions(0x0302, IsoTlsConfig.Tls13),
                "TLS 1.1").Code, "code");
            cfg.SetVersions(IsoTlsConfig.Tls12, IsoTlsConfig.Tls13).SetServerName("plc").SetInsecure(false);
            using (var c = new IsoConnection("127.0.0.1", 1))
            {
                Equal(IsoError.State, Throws<IsoException>(() => c.StartTls(cfg, 1000), "not connected").Code, "code");
                Assert(!c.TlsActive, "no TLS");
                // State, or Invalid from older libraries; the message says TLS is not started.
                var e = Throws<IsoException>(() => c.ExportKeyingMaterial("EXPERIMENTAL_OMS", 32), "exporter without TLS");
                Assert((e.Code == IsoError.State || e.Code == IsoError.Invalid) && e.Detail.Contains("not started"),
                    "a 'TLS not started' error: " + e.Message);
            }
            cfg.Dispose();
            Throws<ObjectDisposedException>(() => cfg.SetInsecure(true), "disposed config");
        }
    }

    static void TlsPinnedSession()
    {
        SecurePeer peer = Peer();
        using (var c = ConnectHmi(peer))
        using (var cfg = new IsoTlsConfig().SetPinSha256(peer.Pin))
        {
            c.StartTls(cfg, 5000);
            Assert(c.TlsActive, "TLS active");
            AssertSessionCreated(c, 1);
            AssertSessionCreated(c, 2);
            BytesEqual(PemToDer(peer.CertPath), c.PeerCertificate(), "peer certificate");

            byte[] oms = c.ExportKeyingMaterial("EXPERIMENTAL_OMS", 32);
            Assert(oms.Length == 32 && oms.Any(b => b != 0), "32 bytes of key");
            BytesEqual(oms, c.ExportKeyingMaterial(Encoding.ASCII.GetBytes("EXPERIMENTAL_OMS"), 32), "same again");
            Assert(!oms.SequenceEqual(c.ExportKeyingMaterial("EXPERIMENTAL_OMT", 32)), "another label");
            Assert(!oms.SequenceEqual(c.ExportKeyingMaterial("EXPERIMENTAL_OMS", 32, new byte[] { 1 })), "a context");
            // TLS 1.3 (what the emulator negotiates) defines no context as the empty one.
            BytesEqual(oms, c.ExportKeyingMaterial("EXPERIMENTAL_OMS", 32, new byte[0]), "empty context");
            Equal(255, c.ExportKeyingMaterial("EXPERIMENTAL_OMS", 255).Length, "255 bytes");
            Throws<ArgumentOutOfRangeException>(() => c.ExportKeyingMaterial("EXPERIMENTAL_OMS", 0), "0 bytes");
            Throws<ArgumentOutOfRangeException>(() => c.ExportKeyingMaterial("EXPERIMENTAL_OMS", 256), "256 bytes");
            Equal(IsoError.Invalid, Throws<IsoException>(() => c.StartTls(cfg, 5000), "second StartTls").Code, "code");
            AssertSessionCreated(c, 3);
        }
    }

    static void TlsCaFile()
    {
        SecurePeer peer = Peer();
        // The self-signed certificate is its own CA; no name is checked unless one is set.
        using (var c = ConnectHmi(peer))
        using (var cfg = new IsoTlsConfig().SetCaFile(peer.CertPath))
        {
            c.StartTls(cfg, 5000);
            AssertSessionCreated(c, 1);
        }
        using (var c = ConnectHmi(peer))
        using (var cfg = new IsoTlsConfig().SetCaFile(peer.CertPath).SetServerName("plc.example"))
        {
            var e = Throws<IsoTlsException>(() => c.StartTls(cfg, 5000), "a name the certificate lacks");
            Assert(e.Detail.Contains("plc.example"), "the name in: " + e.Detail);
        }
    }

    static void TlsWrongPin()
    {
        SecurePeer peer = Peer();
        using (var c = ConnectHmi(peer))
        {
            var wrong = (byte[])peer.Pin.Clone();
            wrong[31] ^= 0x80;
            using (var cfg = new IsoTlsConfig().SetPinSha256(wrong))
            {
                var e = Throws<IsoTlsException>(() => c.StartTls(cfg, 5000), "wrong pin");
                Equal(IsoError.Tls, e.Code, "code");
                Equal(-15, e.NativeCode, "ISO_E_TLS");
                Assert(e.Detail.Contains("pin"), "the reason in: " + e.Detail);
            }
            Assert(!c.TlsActive, "no TLS");
            Equal(IsoError.State, Throws<IsoException>(() => c.Send(S7cpRequest(CreateObject, 1, 288, 0x36)),
                "send after the failed handshake").Code, "code");
        }
    }

    static void TlsUnverified()
    {
        SecurePeer peer = Peer();
        using (var c = ConnectHmi(peer))
        {
            using (var cfg = new IsoTlsConfig())
            {
                var e = Throws<IsoException>(() => c.StartTls(cfg, 5000), "nothing to verify with");
                Equal(IsoError.Invalid, e.Code, "code");
                Assert(e.Detail.Contains("verify"), "the reason in: " + e.Detail);
            }
            Assert(!c.TlsActive, "no TLS");
            using (var cfg = new IsoTlsConfig().SetInsecure(true))
                c.StartTls(cfg, 5000);
            Assert(c.TlsActive, "insecure, named so, starts");
            Assert(c.LastError.Contains("insecure"), "the last error says so: " + c.LastError);
            AssertSessionCreated(c, 1);
        }
    }

    /// <summary>The server role: our listener presents the emulator's certificate and key to our
    /// client, which pins it; messages cross both ways, and both ends export the same key.</summary>
    static void TlsLoopbackServerRole()
    {
        SecurePeer peer = Peer();
        string key = Path.Combine(Path.GetDirectoryName(peer.CertPath), "plc.key");
        using (var pair = new Pair(1024))
        using (var serverCfg = new IsoTlsConfig().SetIdentityFiles(peer.CertPath, key))
        using (var clientCfg = new IsoTlsConfig().SetPinSha256(peer.Pin))
        {
            Exception serverError = null;
            var server = new Thread(() =>
            {
                try { pair.Server.StartTls(serverCfg, 5000); }
                catch (Exception e) { serverError = e; }
            });
            server.Start();
            pair.Client.StartTls(clientCfg, 5000);
            server.Join();
            if (serverError != null) throw serverError;
            Assert(pair.Client.TlsActive && pair.Server.TlsActive, "TLS on both ends");
            byte[] big = Pattern(5000, 7);
            pair.Client.Send(big);
            BytesEqual(big, pair.Server.Receive(5000), "client to server");
            pair.Server.Send(Pattern(300, 3));
            BytesEqual(Pattern(300, 3), pair.Client.Receive(5000), "server to client");
            BytesEqual(pair.Client.ExportKeyingMaterial("EXPERIMENTAL_OMS", 32),
                pair.Server.ExportKeyingMaterial("EXPERIMENTAL_OMS", 32), "the same exporter on both ends");
        }
    }
}
