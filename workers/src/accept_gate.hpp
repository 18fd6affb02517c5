// Taking turns at accept(): what Stevens' pre-forked servers put around the
// call so that one idle worker, not all of them, wakes for a connection.
#pragma once

#include <memory>
#include <string>

namespace prefork {

class AcceptGate {
 public:
  virtual ~AcceptGate() = default;
  // Waits for our turn; false when interrupted (check for a stop).
  virtual bool enter() = 0;
  virtual void leave() = 0;
};

// Why not boost::interprocess::interprocess_mutex for --accept lock: in
// 1.81 its lock() meets EOWNERDEAD (the holder was killed) by unlocking
// without making the mutex consistent, so it becomes unrecoverable and every
// worker's accept fails from then on. A kill -9 of the worker holding the
// lock must not stop the pool, so this is a robust pthread mutex (set up by
// init_accept_lock, prefork/workers/runtime.hpp) that recovers with
// pthread_mutex_consistent(): accept() guards no data, nothing to repair.

// --accept lock in processes: the mutex made by init_accept_lock, in `storage`.
std::unique_ptr<AcceptGate> make_process_lock_gate(void* storage);
// --accept flock: flock(2) on our own open file description of `path`.
std::unique_ptr<AcceptGate> make_flock_gate(const std::string& path);
// --accept lock in threads of one process: a std::mutex shared by them.
std::unique_ptr<AcceptGate> make_thread_lock_gate();

}  // namespace prefork
