// Compiled with Debian's mono-mcs (C# 7) against the generated GamePackets.cs: frames a C_CHAT the way a Unity
// client would (its payload encoded by hand here, as protoc's C# output would), and checks the bytes against the
// Rust encoder's (`frame_hex`, passed as the first argument); then reads the frame back, and checks the table; then
// writes the handshake's hello and checks it against the Rust one (`frame_hex --hello "unity client 1.0"`).
//   mono FrameCheck.exe RUST_HEX TEXT SERVER_FINGERPRINT RUST_HELLO_HEX

using System;
using System.Text;
using Game.Packets;

static class FrameCheck
{
    static int Fail(string why) { Console.Error.WriteLine("FrameCheck: " + why); return 1; }

    static int Main(string[] args)
    {
        if (args.Length != 4) return Fail("usage: FrameCheck RUST_HEX TEXT SERVER_FINGERPRINT RUST_HELLO_HEX");
        byte[] text = Encoding.UTF8.GetBytes(args[1]);
        if (text.Length > 127) return Fail("keep the text under 128 bytes (one-byte varint length)");
        // C_CHAT { string msg = 1; }: tag 0x0a, length, bytes.
        var payload = new byte[2 + text.Length];
        payload[0] = 0x0a;
        payload[1] = (byte)text.Length;
        Buffer.BlockCopy(text, 0, payload, 2, text.Length);

        byte[] frame = Frames.Write(PacketId.C_CHAT, payload);
        string hex = BitConverter.ToString(frame).Replace("-", "").ToLowerInvariant();
        if (hex != args[0]) return Fail("C# frame " + hex + " differs from the Rust encoder's " + args[0]);

        ushort id; int at, length, size;
        if (!Frames.TryRead(frame, 0, frame.Length, out id, out at, out length, out size)) return Fail("frame not read back");
        if (id != (ushort)PacketId.C_CHAT || at != Frames.HeaderLength || length != payload.Length || size != frame.Length)
            return Fail("frame read back wrong");
        if (Frames.TryRead(frame, 0, frame.Length - 1, out id, out at, out length, out size)) return Fail("a partial frame read as whole");
        if (PacketTable.Name((ushort)PacketId.C_CHAT) != "C_CHAT") return Fail("name");
        if (PacketTable.DirectionOf((ushort)PacketId.S_CHAT) != Direction.ServerToClient) return Fail("direction");
        if (PacketTable.Name(9) != null) return Fail("an unknown id has a name");
        if (PacketTable.Fingerprint.ToString("x16") != args[2]) return Fail("fingerprint differs from the server's");
        Console.WriteLine("C# frame matches the Rust encoder's: " + hex);

        byte[] hello = Handshake.WriteHello("unity client 1.0");
        string helloHex = BitConverter.ToString(hello).Replace("-", "").ToLowerInvariant();
        if (helloHex != args[3]) return Fail("C# hello " + helloHex + " differs from the Rust one " + args[3]);
        // The server's answer has kind 2; ReadHello takes only that.
        if (!Frames.TryRead(hello, 0, hello.Length, out id, out at, out length, out size) || id != Handshake.ControlId)
            return Fail("hello not read back as a control frame");
        ulong fingerprint; string version;
        if (Handshake.ReadHello(hello, at, length, out fingerprint, out version)) return Fail("a client hello read as the server's");
        hello[at] = 2;
        if (!Handshake.ReadHello(hello, at, length, out fingerprint, out version)) return Fail("the server's hello not read");
        if (fingerprint != PacketTable.Fingerprint || version != "unity client 1.0") return Fail("hello read back wrong");
        Console.WriteLine("C# hello matches the Rust one: " + helloHex);
        return 0;
    }
}
