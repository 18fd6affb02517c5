#include <prefork/handler.hpp>

namespace prefork {

void Session::on_open(Reply&) {}

void Session::on_close(CloseReason, Reply&) {}

void Handler::handle(const Request&, std::string_view, Reply&) {}

void Handler::handle_frame(const Request& request, std::string_view payload, Reply& reply) {
  handle(request, payload, reply);
}

void Handler::handle_datagram(const Request& request, std::string_view datagram, Reply& reply) {
  handle(request, datagram, reply);
}

void Handler::handle_stream(const Request& request, std::string_view chunk, Reply& reply) {
  handle(request, chunk, reply);
}

std::unique_ptr<Session> Handler::open_session(const Request&) { return nullptr; }

const Codec& Handler::codec(std::size_t, Protocol protocol) {
  static const LengthPrefixCodec frames;
  static const RawCodec chunks;
  if (protocol == Protocol::framed) return frames;
  return chunks;
}

void Handler::setup(const WorkerInfo&) {}

void Handler::finish() {}

}  // namespace prefork
