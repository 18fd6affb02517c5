#include <prefork/core/robust_mutex.hpp>

#include <pthread.h>

#include <cerrno>

#include <prefork/error.hpp>
#include <prefork/log.hpp>

namespace prefork {

static_assert(sizeof(pthread_mutex_t) <= 64, "the scoreboard keeps 64 bytes per mutex");

void init_robust_mutex(void* storage, const char* what) {
  pthread_mutexattr_t attributes;
  ::pthread_mutexattr_init(&attributes);
  ::pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
  int result = ::pthread_mutex_init(static_cast<pthread_mutex_t*>(storage), &attributes);
  ::pthread_mutexattr_destroy(&attributes);
  if (result != 0) throw SystemError("pthread_mutex_init", result, what);
}

int lock_robust_mutex(void* storage, bool& owner_died) noexcept {
  auto* mutex = static_cast<pthread_mutex_t*>(storage);
  int result = ::pthread_mutex_lock(mutex);
  owner_died = result == EOWNERDEAD;
  if (owner_died) {
    ::pthread_mutex_consistent(mutex);
    return 0;
  }
  if (result != 0) log_sys_error("pthread_mutex_lock", result);
  return result;
}

void unlock_robust_mutex(void* storage) noexcept {
  ::pthread_mutex_unlock(static_cast<pthread_mutex_t*>(storage));
}

}  // namespace prefork
