// Reads (and the master's writes) of a shared mapping whose file someone may
// truncate under them: touching a page past the new end raises SIGBUS. Any
// process of the scoreboard's user can `truncate -s 0 /dev/shm/NAME`; the
// readers (prefork-top, the master's /metrics thread) and the master must
// report it, not die of it.
//
// Why a signal handler and not fstat() before each access: the size can
// change between the fstat and the load, and an access is many loads (a
// snapshot copies megabytes). fstat still comes first where it is cheap,
// so that a truncation already done costs no fault; the guard covers the
// race.
#pragma once

#include <cstddef>
#include <type_traits>

namespace prefork {

// Runs body(context). A SIGBUS raised in this thread by a load or store
// within [begin, begin + size) jumps back here (siglongjmp) and makes it
// false. Whatever `body` had built by then is abandoned, not destroyed (its
// heap memory leaks): bodies only copy plain values out of the mapping, or
// store plain values into it. Any other SIGBUS (another address, another
// thread, one sent by kill) gets the action SIGBUS had before the guard
// installed its handler: by default a core dump.
bool run_guarded(const void* begin, std::size_t size, void (*body)(void*), void* context);

template <class Body>
bool run_guarded(const void* begin, std::size_t size, Body&& body) {
  using B = std::remove_reference_t<Body>;
  return run_guarded(
      begin, size, [](void* b) { (*static_cast<B*>(b))(); },
      const_cast<void*>(static_cast<const void*>(&body)));
}

}  // namespace prefork
