// The machine a run was measured on, so that results describe themselves.
#pragma once

#include <string>

namespace bench {

struct Machine {
  unsigned online_cpus = 0;  // sysconf(_SC_NPROCESSORS_ONLN)
  unsigned usable_cpus = 0;  // this process's affinity (taskset), as nproc(1) counts
  std::string cpu_model;     // /proc/cpuinfo "model name"
  std::string kernel;        // uname: "Linux 6.1.0-13-amd64 x86_64"
  double load_average = 0;   // 1-minute, at the end of the run: was the machine busy?
};

Machine describe_machine();

}  // namespace bench
