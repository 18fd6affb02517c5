// A worker's UDP service on one listener: each datagram is one request,
// each reply message one datagram back to its sender.
#pragma once

#include <prefork/handler.hpp>

#include <cstddef>
#include <limits>

#include <prefork/core/slot_writer.hpp>

namespace prefork {

class DatagramService final : public ReplySink {
 public:
  // A datagram longer than `max_message` (--max-message) is counted as
  // truncated_datagram and dropped, as a larger one than the buffer is.
  DatagramService(int fd, std::size_t listener, Handler& handler, SlotWriter& stats,
                  unsigned worker_slot,
                  std::size_t max_message = std::numeric_limits<std::size_t>::max()) noexcept;

  // Serves the datagrams queued on the socket, at most `budget` of them so
  // that one busy socket cannot starve the others.
  void on_readable(char* buffer, std::size_t buffer_size, unsigned budget);

  // The two halves of on_readable, for models that receive in one process
  // and handle in another (fork per datagram, like ForkingUDPServer).
  enum class Received { datagram, none, dropped };
  Received receive(char* buffer, std::size_t buffer_size, std::size_t& length);
  // Handles the datagram just received into `buffer` from peer().
  void handle(const char* buffer, std::size_t length);
  const Address& peer() const noexcept { return peer_; }
  void set_peer(const Address& peer) noexcept { peer_ = peer; }

  std::span<char> allocate(std::size_t size) override;
  void end(Ending) override {}  // a datagram has no connection to end

 private:
  // Sends the reply waiting, if any; the bytes sent (0: none or failed).
  std::size_t send_pending() noexcept;

  int fd_;
  std::size_t listener_;
  Handler& handler_;
  SlotWriter& stats_;
  unsigned worker_slot_;
  std::size_t max_message_;
  Address peer_;
  // The reply being written: sent when the handler asks for the next one or returns.
  std::unique_ptr<char[]> reply_;
  std::size_t reply_capacity_ = 0;
  std::size_t reply_size_ = 0;
  bool reply_pending_ = false;
};

}  // namespace prefork
