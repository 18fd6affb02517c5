// echo_blocking: the lesson's socketserver handlers, line for line, as
// blocking handlers. The lesson's TCP server
//
//   class MyHandler(socketserver.BaseRequestHandler):
//       def handle(self):
//           while True:
//               try:
//                   data = self.request.recv(1024)
//                   if len(data) == 0: break
//                   self.request.send(data.upper())
//               except ConnectionResetError:
//                   break
//
//   s = socketserver.ThreadingTCPServer(('127.0.0.1', 8080), MyHandler)
//
// is handle(Connection&) below, and its UDP server (ThreadingUDPServer,
// data = self.request[0]; self.request[1].sendto(data.upper(), ...)) is
// handle_datagram(). Run it as the lesson does, then as the other designs:
//
//   build/bin/echo_blocking --model thread-per-connection   # ThreadingTCPServer
//   build/bin/echo_blocking --model fork-per-connection     # ForkingTCPServer
//   build/bin/echo_blocking --model prefork --workers 4     # pre-forked
//   python3 examples/clients/tcp_client.py                  # the lesson's client
#include <prefork/command_line.hpp>
#include <prefork/connection.hpp>

#include <algorithm>
#include <string>

namespace {

char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; }

class MyHandler final : public prefork::ConnectionHandler {
 public:
  // One connection, as the lesson's handle(): the communication loop.
  void handle(prefork::Connection& connection) override {
    char data[1024];
    for (;;) {
      std::size_t n = connection.read(data);  // self.request.recv(1024)
      if (n == 0) break;                      // the client left (or reset)
      std::transform(data, data + n, data, upper);
      connection.write({data, n});  // self.request.send(data.upper())
    }
  }

  // One datagram, as the lesson's UDP handle().
  void handle_datagram(const prefork::Request&, std::string_view data,
                       prefork::Reply& reply) override {
    std::string answer(data);
    std::transform(answer.begin(), answer.end(), answer.begin(), upper);
    reply.send(answer);
  }
};

}  // namespace

int main(int argc, char** argv) {
  MyHandler handler;
  prefork::CommandLineDefaults defaults;
  defaults.program = "echo_blocking";
  defaults.description =
      "The lesson's socketserver TCP and UDP handlers as blocking handlers (blocking models "
      "only: --model thread-per-connection, fork-per-connection, iterative, prefork, "
      "prethreaded, hybrid).";
  defaults.listeners = {
      {prefork::Protocol::stream, prefork::Address::parse("127.0.0.1:8080")},
      {prefork::Protocol::datagram, prefork::Address::parse("127.0.0.1:8080")},
  };
  defaults.model = prefork::Model::thread_per_connection;
  return prefork::prefork_main(argc, argv, handler, defaults);
}
