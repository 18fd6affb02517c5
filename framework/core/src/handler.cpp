#include <prefork/handler.hpp>

namespace prefork {

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

void Handler::setup(const WorkerInfo&) {}

void Handler::finish() {}

}  // namespace prefork
