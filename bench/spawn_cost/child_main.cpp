// spawn-cost-child: the exec target of spawn-cost. Statically linked where the
// C library allows it, so an exec costs a new address space and no dynamic
// loading. With a descriptor number as its last argument, its first act in
// main() is to send its CLOCK_MONOTONIC stamp there; without one it exits at once.
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc < 2) return 0;
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  std::int64_t stamp = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  int fd = std::atoi(argv[argc - 1]);
  return ::write(fd, &stamp, sizeof stamp) == sizeof stamp ? 0 : 1;
}
