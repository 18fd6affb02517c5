// What a worker does when accept4() fails, the same in the event loop and
// the blocking models: a connection that died in the queue is skipped, an
// empty queue is no error, and running out of descriptors or memory pauses
// accepting for a while (the connection stays queued, and a loop that
// retried at once would spin on it), as nginx does.
#pragma once

#include <prefork/core/slot_writer.hpp>
#include <prefork/listener.hpp>

#include <chrono>
#include <cstddef>

namespace prefork {

enum class AcceptFailure {
  next,       // that connection is gone (aborted, interrupted): try the next one
  empty,      // nothing to accept now
  exhausted,  // out of descriptors or memory: pause accepting
  failed,     // anything else: counted and logged
};

// How long to stop accepting after `exhausted`.
inline constexpr std::chrono::milliseconds accept_pause{100};

// Classifies `error` from accept4() on `listener` (index `index`); counts
// and logs it (naming the call and errno) unless it is next or empty.
AcceptFailure accept_failed(int error, const Listener& listener, std::size_t index,
                            SlotWriter& stats) noexcept;

}  // namespace prefork
