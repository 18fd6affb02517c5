#include "descriptor_limit.hpp"

#include <prefork/log.hpp>

#include <cerrno>
#include <string>

namespace prefork {

std::uint64_t worker_descriptors_needed(std::uint64_t cap, std::uint64_t listeners) noexcept {
  return cap + listeners + worker_descriptor_margin;
}

std::string descriptor_shortfall(rlim_t limit, std::uint64_t cap, std::uint64_t listeners,
                                 unsigned workers) {
  const std::uint64_t needed = worker_descriptors_needed(cap, listeners);
  if (limit == RLIM_INFINITY || limit >= needed) return {};
  std::string text = "--max-connections ";
  text += std::to_string(cap);
  text += " per worker (";
  text += std::to_string(cap * workers);
  text += " for ";
  text += std::to_string(workers);
  text += " workers) does not fit: each worker process needs up to ";
  text += std::to_string(needed);
  text += " descriptors (";
  text += std::to_string(cap);
  text += " connections, ";
  text += std::to_string(listeners);
  text += " listeners, ";
  text += std::to_string(worker_descriptor_margin);
  text += " of its own) and RLIMIT_NOFILE is ";
  text += std::to_string(limit);
  text += ": a worker stops accepting at EMFILE first (raise the hard limit, or lower the cap)";
  return text;
}

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
