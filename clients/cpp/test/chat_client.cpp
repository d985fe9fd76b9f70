// A C++17 client of the demo server built only from protoc's C++ messages and the generated game_packets.hpp:
// opens with the version handshake (the server may require it: `server --handshake`), logs in, enters a room,
// chats, and checks that its chat comes back (a room chat reaches its sender too).
//   chat_client HOST PORT NAME   (exit 0 on success)

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "game.pb.h"
#include "../game_packets.hpp"

namespace p = game::packets;
namespace m = game;

static int fail(const char* what) {
    std::fprintf(stderr, "chat_client: %s\n", what);
    return 1;
}

struct Conn {
    int fd;
    std::vector<std::uint8_t> in;

    bool send(p::PacketId id, const google::protobuf::Message& message) {
        std::string payload = message.SerializeAsString();
        std::vector<std::uint8_t> frame;
        if (!p::write_frame(frame, id, payload.data(), payload.size())) return false;
        return ::send(fd, frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size());
    }

    // The next frame, reading as needed; false when the connection ends or breaks.
    bool next(std::uint16_t& id, std::string& payload) {
        for (;;) {
            p::ReadStatus status;
            if (auto frame = p::read_frame(in.data(), in.size(), &status)) {
                id = frame->id;
                payload.assign(reinterpret_cast<const char*>(frame->payload), frame->payload_length);
                in.erase(in.begin(), in.begin() + static_cast<long>(frame->frame_length));
                return true;
            }
            if (status == p::ReadStatus::Broken) return false;
            std::uint8_t chunk[4096];
            ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) return false;
            in.insert(in.end(), chunk, chunk + n);
        }
    }

    // Skips frames until one of packet `want`.
    bool expect(p::PacketId want, std::string& payload) {
        std::uint16_t id;
        while (next(id, payload)) {
            const p::PacketInfo* info = p::find_packet(id);
            if (!info || info->direction != p::Direction::ServerToClient) return false;
            if (id == static_cast<std::uint16_t>(want)) return true;
        }
        return false;
    }
};

int main(int argc, char** argv) {
    if (argc != 4) return fail("usage: chat_client HOST PORT NAME");
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[2])));
    ::inet_pton(AF_INET, argv[1], &addr.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return fail("cannot connect");
    Conn conn{fd, {}};
    std::string payload;

    // The handshake: our hello first, then the server's, whose fingerprint must be ours.
    std::vector<std::uint8_t> hello;
    if (!p::handshake::write_hello(hello, "cpp test client 1.0")) return fail("hello does not fit");
    if (::send(fd, hello.data(), hello.size(), 0) != static_cast<ssize_t>(hello.size())) return fail("hello not sent");
    std::uint16_t id;
    if (!conn.next(id, payload)) return fail("no answer to the hello");
    p::FrameView frame{id, reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size(), 0};
    auto server = p::handshake::read_hello(frame);
    if (!server) return fail("the server's first frame is not its hello");
    if (server->fingerprint != p::kFingerprint) {
        std::fprintf(stderr, "chat_client: protocol mismatch: ours %016llx, the server's %016llx\n",
                     static_cast<unsigned long long>(p::kFingerprint),
                     static_cast<unsigned long long>(server->fingerprint));
        return 1;
    }
    std::printf("handshake: the server is \"%.*s\"\n", static_cast<int>(server->version.size()), server->version.data());

    m::C_LOGIN login;
    login.set_name(argv[3]);
    if (!conn.send(p::PacketId::C_LOGIN, login) || !conn.expect(p::PacketId::S_LOGIN, payload)) return fail("no S_LOGIN");
    m::S_LOGIN logged;
    if (!logged.ParseFromString(payload) || !logged.success()) return fail("login refused");

    m::C_ENTER_ROOM enter;
    enter.set_room_id(4);
    if (!conn.send(p::PacketId::C_ENTER_ROOM, enter) || !conn.expect(p::PacketId::S_ENTER_ROOM, payload)) {
        return fail("no S_ENTER_ROOM");
    }

    m::C_CHAT chat;
    chat.set_msg("hello from C++");
    if (!conn.send(p::PacketId::C_CHAT, chat) || !conn.expect(p::PacketId::S_CHAT, payload)) return fail("no S_CHAT");
    m::S_CHAT heard;
    if (!heard.ParseFromString(payload)) return fail("S_CHAT does not parse");
    if (heard.player_id() != logged.player_id() || heard.msg() != "hello from C++") return fail("not our chat");
    std::printf("player %llu chatted through the generated C++ table (protocol %.*s, fingerprint %016llx)\n",
                static_cast<unsigned long long>(logged.player_id()), static_cast<int>(p::kProtocol.size()),
                p::kProtocol.data(), static_cast<unsigned long long>(p::kFingerprint));
    ::close(fd);
    return 0;
}
