//! Code the examples share, kept in a library so the tests in `tests/` can run it in-process.
//!
//! # Layout
//! - [`echo`]: a two-packet echo protocol written by hand (prost structs with `#[derive(Packet)]`, no `.proto`),
//!   its [`Logic`](packet_runtime::Logic) and an [`IoHandler`](packet_runtime::IoHandler) that answers on the IO
//!   thread. Used by the `echo_server` and `wide_header` examples.

pub mod echo {
    //! The smallest useful protocol: the client sends [`Echo`], the server answers [`EchoReply`] with the same bytes.
    //!
    //! The reply is sent from the IO thread ([`EchoIo`]): an echo needs no game state, so it never queues for the
    //! logic thread. [`EchoLogic`] answers too, for servers started without the hook.

    use std::io;
    use std::net::SocketAddr;

    use packet_runtime::HeaderKind;
    use packet_runtime::ServerBuilder;
    use packet_runtime::{Context, IoAction, IoHandler, Logic, Server, ServerHandle, Session};

    /// Client to server: bytes to send back.
    #[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
    #[packet(id = 1)]
    pub struct Echo {
        /// The bytes to echo.
        #[prost(bytes = "vec", tag = "1")]
        pub data: Vec<u8>,
    }

    /// Server to client: the bytes of an [`Echo`].
    #[derive(Clone, PartialEq, prost::Message, packet_runtime::Packet)]
    #[packet(id = 2)]
    pub struct EchoReply {
        /// The bytes received.
        #[prost(bytes = "vec", tag = "1")]
        pub data: Vec<u8>,
    }

    packet_runtime::define_packets! {
        /// Echo: one request, one reply.
        pub protocol EchoProtocol {
            /// What clients send.
            client_to_server EchoRequest { Echo }
            /// What the server sends.
            server_to_client EchoResponse { EchoReply }
        }
    }

    /// The logic thread's side. With [`EchoIo`] installed it never sees an `Echo`.
    #[derive(Debug, Default)]
    pub struct EchoLogic;

    impl Logic for EchoLogic {
        type Protocol = EchoProtocol;

        fn on_packet(
            &mut self,
            _ctx: &mut Context<'_, EchoProtocol>,
            session: &Session<EchoProtocol>,
            packet: EchoRequest,
        ) {
            let EchoRequest::Echo(echo) = packet;
            // A closed session refuses sends; nothing to do about it here.
            let _ = session.send(&EchoReply { data: echo.data });
        }
    }

    /// Answers on the IO thread that decoded the packet.
    #[derive(Debug, Default)]
    pub struct EchoIo;

    impl IoHandler<EchoProtocol> for EchoIo {
        fn on_packet(&self, session: &Session<EchoProtocol>, packet: EchoRequest) -> IoAction<EchoRequest> {
            let EchoRequest::Echo(echo) = packet;
            let _ = session.send(&EchoReply { data: echo.data });
            IoAction::Handled
        }
    }

    /// A builder for the echo server: the IO hook installed, listening on `addr`, with `header`. Frames up to
    /// `max_frame` bytes are accepted.
    pub fn builder(addr: SocketAddr, header: HeaderKind, max_frame: usize) -> ServerBuilder<EchoProtocol> {
        Server::<EchoProtocol>::builder().bind(addr).header(header).max_frame(max_frame).io_handler(EchoIo)
    }

    /// Starts an echo server with the compact header on `addr` (port 0: any free port; see
    /// [`ServerHandle::local_addr`]).
    pub fn start(addr: SocketAddr) -> io::Result<ServerHandle<EchoProtocol>> {
        builder(addr, HeaderKind::Compact, 16 * 1024).start(EchoLogic)
    }
}
