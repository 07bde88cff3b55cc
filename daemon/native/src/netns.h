// Creating a TCP socket inside another network namespace. A socket belongs to the namespace
// of the thread that created it, for its whole life; so the calling thread enters the target
// namespace, makes (and optionally binds and listens on) the socket, and returns at once.
#pragma once

#include <cstdint>
#include <string>

#include "sys.h"

namespace meshd {

struct NetnsSocketSpec {
  std::string netns_path;
  int family = 4;  // 4 or 6
  bool listen = false;
  bool bind = false;  // bind to address:port (port 0 = kernel's choice)
  std::string address;
  uint16_t port = 0;
  int backlog = 511;
  bool has_mark = false;
  uint32_t mark = 0;
  bool transparent = false;
  bool freebind = false;
  bool reuse_addr = false;
  bool reuse_port = false;
  bool ipv6_only = false;  // family 6 only
  bool has_linger = false;  // SO_LINGER on with `linger` seconds; accepted sockets inherit it
  uint32_t linger = 0;
};

// On success *out_fd owns a non-blocking, close-on-exec TCP socket in the target namespace.
// The calling thread is back in its original namespace when this returns, whatever happened;
// if it cannot get back the process aborts (continuing would open later sockets in the
// wrong namespace).
SysError SocketInNetns(const NetnsSocketSpec& spec, int* out_fd);

}  // namespace meshd
