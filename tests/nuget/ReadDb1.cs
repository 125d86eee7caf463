// A program compiled against the packaged assembly (lib/netstandard2.0/Isotcp.dll): reads
// DB1.DBB0 (16 bytes) from an S7 server and prints what it got.
//
//   mono ReadDb1.exe PORT   -> "assembly <its informational version>", "references <name version,
//                              ...>" (the assemblies Isotcp.dll references), "isotcp <library
//                              version>", "tpdu <size>", "DB1 00 01 02 ..."
using System;
using System.Linq;
using Isotcp;

static class ReadDb1
{
    // S7 setup communication, PDU 480.
    static readonly byte[] Setup = {
        0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
        0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0 };
    // S7 read variable: 16 bytes (transport size 02, length 0x10) of DB1 from offset 0.
    static readonly byte[] Read = {
        0x32, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x00,
        0x04, 0x01, 0x12, 0x0A, 0x10, 0x02, 0x00, 0x10, 0x00, 0x01, 0x84, 0x00, 0x00, 0x00 };

    // One S7 request; the answer must be a successful ack data (ROSCTR 3, error 0).
    static byte[] Exchange(IsoConnection conn, byte[] request)
    {
        conn.Send(request);
        byte[] answer = conn.Receive(5000);
        if (answer.Length < 12 || answer[0] != 0x32 || answer[1] != 0x03 || answer[10] != 0 || answer[11] != 0)
            throw new Exception("not a successful S7 ack data: " + BitConverter.ToString(answer));
        return answer;
    }

    static int Main(string[] args)
    {
        ushort port;
        if (args.Length != 1 || !ushort.TryParse(args[0], out port))
        {
            Console.Error.WriteLine("usage: ReadDb1.exe PORT");
            return 2;
        }
        try
        {
            var assembly = typeof(IsoConnection).Assembly;
            var info = (System.Reflection.AssemblyInformationalVersionAttribute)Attribute.GetCustomAttribute(
                assembly, typeof(System.Reflection.AssemblyInformationalVersionAttribute));
            Console.WriteLine("assembly " + (info == null ? "(no version)" : info.InformationalVersion));
            Console.WriteLine("references " + string.Join(", ",
                assembly.GetReferencedAssemblies().Select(r => r.Name + " " + r.Version).OrderBy(s => s)));
            Console.WriteLine("isotcp " + Native.Version());
            using (var conn = new IsoConnection("127.0.0.1", port))
            {
                conn.SetTsap(0x0100, IsoConnection.S7Tsap(1, 0, 2));
                conn.Connect(5000);
                Console.WriteLine("tpdu " + conn.TpduSize);
                Exchange(conn, Setup);
                byte[] answer = Exchange(conn, Read);
                // Parameter 04 01, then the item: return code FF, transport size 04, length.
                if (answer.Length != 14 + 4 + 16 || answer[14] != 0xFF)
                    throw new Exception("read DB1 answer: " + BitConverter.ToString(answer));
                Console.WriteLine("DB1 " + string.Join(" ", answer.Skip(18).Select(b => b.ToString("X2"))));
            }
            return 0;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine("ReadDb1: " + e);
            return 1;
        }
    }
}
