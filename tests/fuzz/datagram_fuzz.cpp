// The worker's UDP path (workers/src/datagram.cpp) on any datagrams and any
// receive buffer size, through real loopback sockets so that the kernel,
// not the test, decides what is truncated (MSG_TRUNC). Invariants: a
// datagram larger than the buffer is counted as an error and never handed
// to the handler; every other one reaches it with exactly its bytes, in
// order; each reply goes back as one datagram; the slot's counters agree.
//
// Input: two bytes of buffer size (0 to 4095), one byte of handler
// behaviour (replies per datagram, 0 to 2; whether it throws), then up to
// 8 datagrams, each a little-endian 2-byte length (mod 2048, cut to what
// is left) and its bytes.
#include <prefork/core/slot_writer.hpp>
#include <prefork/listener.hpp>
#include <prefork/log.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "datagram.hpp"

namespace {

struct Echo final : prefork::Handler {
  unsigned replies = 0;
  bool throws = false;
  std::vector<std::string> seen;
  void handle_datagram(const prefork::Request& request, std::string_view datagram,
                       prefork::Reply& reply) override {
    if (request.protocol != prefork::Protocol::datagram) std::abort();
    seen.emplace_back(datagram);
    if (throws) throw std::runtime_error("fuzz");
    for (unsigned i = 0; i < replies; ++i) reply.send(datagram);
  }
};

// Made once: a fresh socket pair per input would cost more than the input.
struct Net {
  std::vector<prefork::Listener> server = prefork::open_listeners(
      {{prefork::Protocol::datagram, prefork::Address::parse("127.0.0.1:0")}});
  prefork::UniqueFd client{::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)};
  Net() {
    // The replies of one input (at most 8 x 2 x 2 KiB) must all fit.
    const int size = 1 << 20;
    ::setsockopt(client.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    ::setsockopt(server[0].fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    prefork::configure_log({.level = prefork::LogLevel::error});
  }
};

std::uint64_t load(const std::atomic<std::uint64_t>& value) { return value.load(); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Net net;
  if (size < 3) return 0;
  const std::size_t buffer_size = (data[0] | std::size_t{data[1]} << 8) % 4096;
  Echo handler;
  handler.replies = data[2] % 3;
  handler.throws = (data[2] & 0x80) != 0;
  std::vector<std::string> sent;
  for (std::size_t at = 3; at + 2 <= size && sent.size() < 8;) {
    std::size_t length = (data[at] | std::size_t{data[at + 1]} << 8) % 2048;
    at += 2;
    length = std::min(length, size - at);
    sent.emplace_back(reinterpret_cast<const char*>(data + at), length);
    at += length;
  }
  for (const std::string& d : sent)
    if (::sendto(net.client.get(), d.data(), d.size(), 0, net.server[0].local.data(),
                 net.server[0].local.length()) != static_cast<ssize_t>(d.size()))
      std::abort();  // loopback takes every datagram of this size

  auto slot = std::make_unique<prefork::Slot>();
  prefork::SlotWriter stats(*slot);
  prefork::DatagramService service(net.server[0].fd.get(), 0, handler, stats, 0);
  auto buffer = std::make_unique<char[]>(buffer_size);  // exact: ASan sees any overrun
  service.on_readable(buffer.get(), buffer_size, static_cast<unsigned>(sent.size()) + 1);

  std::vector<std::string> whole;
  std::uint64_t truncated = 0, bytes_in = 0;
  for (const std::string& d : sent) {
    bytes_in += d.size();  // a dropped one too: recvmsg(MSG_TRUNC) tells its real length
    if (d.size() > buffer_size)
      ++truncated;
    else
      whole.push_back(d);
  }
  if (handler.seen != whole) std::abort();
  const prefork::Counters& c = slot->counters;
  using prefork::ErrorKind;
  const std::uint64_t thrown = handler.throws ? whole.size() : 0;
  if (load(c.requests) != whole.size() || load(c.bytes_in) != bytes_in ||
      load(c.error_kinds[static_cast<unsigned>(ErrorKind::truncated_datagram)]) != truncated ||
      load(c.error_kinds[static_cast<unsigned>(ErrorKind::handler_exception)]) != thrown ||
      load(c.errors) != truncated + thrown || load(c.listeners[0].requests) != whole.size())
    std::abort();

  // Every reply, and nothing else, back at the client in order.
  std::uint64_t bytes_out = 0;
  auto reply = std::make_unique<char[]>(4096);
  for (const std::string& d : whole)
    for (unsigned i = 0; i < (handler.throws ? 0 : handler.replies); ++i) {
      const ssize_t n = ::recv(net.client.get(), reply.get(), 4096, MSG_DONTWAIT);
      if (n < 0 || std::string_view(reply.get(), static_cast<std::size_t>(n)) != d) std::abort();
      bytes_out += d.size();
    }
  if (::recv(net.client.get(), reply.get(), 4096, MSG_DONTWAIT) >= 0) std::abort();
  if (::recv(net.server[0].fd.get(), reply.get(), 4096, MSG_DONTWAIT) >= 0) std::abort();
  if (load(c.bytes_out) != bytes_out) std::abort();
  return 0;
}
