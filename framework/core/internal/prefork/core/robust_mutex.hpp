// A process-shared, robust pthread mutex in shared memory: the accept lock
// and the slots' writer locks. Robust, because a process killed while it
// holds one must not stop everyone else (Boost's interprocess_mutex cannot
// recover from that; see docs/NOTES.md).
#pragma once

namespace prefork {

// Throws SystemError naming `what` when pthread_mutex_init fails.
void init_robust_mutex(void* storage, const char* what);

// Locks; when the previous holder died holding it, marks it consistent and
// sets `owner_died`. Returns 0 or the pthread error (logged).
int lock_robust_mutex(void* storage, bool& owner_died) noexcept;
void unlock_robust_mutex(void* storage) noexcept;

}  // namespace prefork
