#include "machine.hpp"

#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace bench {

Machine describe_machine() {
  Machine m;
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  m.online_cpus = online > 0 ? static_cast<unsigned>(online) : 0;
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    m.usable_cpus = static_cast<unsigned>(CPU_COUNT(&set));

  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (!line.starts_with("model name")) continue;
    const auto colon = line.find(':');
    const auto from = colon == std::string::npos ? colon : line.find_first_not_of(" \t", colon + 1);
    if (from != std::string::npos) m.cpu_model = line.substr(from);
    break;
  }
  if (m.cpu_model.empty()) m.cpu_model = "unknown";

  utsname name{};
  if (::uname(&name) == 0)
    m.kernel = std::string(name.sysname) + ' ' + name.release + ' ' + name.machine;
  double load[1];
  if (::getloadavg(load, 1) == 1) m.load_average = load[0];
  return m;
}

}  // namespace bench
