#include "descriptor_limit.hpp"

#include <prefork/log.hpp>

#include <cerrno>

namespace prefork {

rlim_t raise_descriptor_limit() noexcept {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    log_sys_error("getrlimit", errno, "RLIMIT_NOFILE");
    return 0;
  }
  if (limit.rlim_cur >= limit.rlim_max) return limit.rlim_cur;
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    log_sys_error("setrlimit", errno, "RLIMIT_NOFILE to %llu",
                  static_cast<unsigned long long>(limit.rlim_max));
    return before;
  }
  log_info("open-files limit raised from %llu to %llu (RLIMIT_NOFILE's hard limit)",
           static_cast<unsigned long long>(before),
           static_cast<unsigned long long>(limit.rlim_cur));
  return limit.rlim_cur;
}

}  // namespace prefork
