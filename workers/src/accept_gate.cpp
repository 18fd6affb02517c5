#include "accept_gate.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>

#include <cerrno>
#include <mutex>

#include <prefork/error.hpp>
#include <prefork/log.hpp>
#include <prefork/unique_fd.hpp>

#include <prefork/core/robust_mutex.hpp>
#include <prefork/workers/runtime.hpp>

namespace prefork {

namespace {

class ProcessLockGate final : public AcceptGate {
 public:
  explicit ProcessLockGate(void* storage) : mutex_(static_cast<pthread_mutex_t*>(storage)) {}

  // A holder killed while it waited in accept() leaves nothing to repair.
  bool enter() override {
    bool owner_died = false;
    return lock_robust_mutex(mutex_, owner_died) == 0;
  }
  void leave() override { unlock_robust_mutex(mutex_); }

 private:
  pthread_mutex_t* mutex_;
};

class FlockGate final : public AcceptGate {
 public:
  explicit FlockGate(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (!fd_) throw SystemError("open", errno, path + " (the --accept flock file)");
  }
  bool enter() override {
    if (::flock(fd_.get(), LOCK_EX) == 0) return true;
    if (errno != EINTR) log_sys_error("flock", errno);
    return false;
  }
  void leave() override { ::flock(fd_.get(), LOCK_UN); }

 private:
  UniqueFd fd_;  // our own: flock locks belong to the open file description
};

class ThreadLockGate final : public AcceptGate {
 public:
  bool enter() override {
    mutex_.lock();
    return true;
  }
  void leave() override { mutex_.unlock(); }

 private:
  std::mutex mutex_;
};

}  // namespace

void init_accept_lock(Header& header) { init_robust_mutex(header.accept_lock, "accept lock"); }

std::unique_ptr<AcceptGate> make_process_lock_gate(void* storage) {
  return std::make_unique<ProcessLockGate>(storage);
}

std::unique_ptr<AcceptGate> make_flock_gate(const std::string& path) {
  return std::make_unique<FlockGate>(path);
}

std::unique_ptr<AcceptGate> make_thread_lock_gate() { return std::make_unique<ThreadLockGate>(); }

}  // namespace prefork
