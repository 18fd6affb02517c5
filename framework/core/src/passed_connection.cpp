#include <prefork/core/passed_connection.hpp>

#include <sys/uio.h>

#include <cstring>

namespace prefork {

namespace {

// One PassedConnection and room for one descriptor.
struct Message {
  iovec io;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr header{};

  explicit Message(PassedConnection& passed) : io{&passed, sizeof passed} {
    header.msg_iov = &io;
    header.msg_iovlen = 1;
    header.msg_control = control;
    header.msg_controllen = sizeof control;
  }
};

}  // namespace

ssize_t send_passed(int channel, int fd, const PassedConnection& passed) noexcept {
  PassedConnection copy = passed;
  Message message(copy);
  cmsghdr* header = CMSG_FIRSTHDR(&message.header);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
  return ::sendmsg(channel, &message.header, MSG_NOSIGNAL);
}

Received receive_passed(int channel, int flags) noexcept {
  Received received;
  Message message(received.passed);
  received.result = ::recvmsg(channel, &message.header, MSG_CMSG_CLOEXEC | flags);
  if (received.result <= 0) return received;
  cmsghdr* header = CMSG_FIRSTHDR(&message.header);
  if (header != nullptr && header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS) {
    int fd = -1;
    std::memcpy(&fd, CMSG_DATA(header), sizeof fd);
    received.fd.reset(fd);
  }
  return received;
}

}  // namespace prefork
