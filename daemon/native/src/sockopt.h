// Socket options meshd needs and Node does not expose. Plain syscalls, no N-API:
// family is 4 or 6 (the address family of the socket, or of the client for originalDst).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "sys.h"

namespace meshd {

struct Endpoint {
  std::string address;
  uint16_t port = 0;
};

SysError SetMark(int fd, uint32_t mark);
SysError GetMark(int fd, uint32_t* mark);
SysError SetTransparent(int fd, int family);
SysError SetFreebind(int fd, int family);
SysError SetReuseAddr(int fd);
SysError SetReusePort(int fd);
SysError SetIpv6Only(int fd, bool on);
// SO_LINGER. on with seconds 0: close() resets the connection (RST) and drops unsent data;
// off: close() sends a FIN after whatever is queued (the default).
SysError SetLinger(int fd, bool on, int seconds);
SysError GetLinger(int fd, bool* on, int* seconds);
// TCP_USER_TIMEOUT: how long (ms) sent data may stay unacknowledged before the kernel drops
// the connection (ETIMEDOUT); 0 = the kernel's default.
SysError SetTcpUserTimeout(int fd, uint32_t ms);
SysError GetTcpUserTimeout(int fd, uint32_t* ms);
// SO_KEEPALIVE on with TCP_KEEPIDLE, TCP_KEEPINTVL (seconds) and TCP_KEEPCNT (probes).
struct Keepalive {
  bool enabled = false;
  int idle_seconds = 0;
  int interval_seconds = 0;
  int count = 0;
};
SysError SetTcpKeepalive(int fd, int idle_seconds, int interval_seconds, int count);
SysError GetTcpKeepalive(int fd, Keepalive* out);
// The socket's own address family (SO_DOMAIN) as 4 or 6; EAFNOSUPPORT for anything else.
SysError SocketFamily(int fd, int* family);
// Destination before iptables REDIRECT/DNAT, from conntrack. family selects the option:
// 4 → SO_ORIGINAL_DST, 6 → IP6T_SO_ORIGINAL_DST.
SysError OriginalDst(int fd, int family, Endpoint* out);

// Parses a numeric IP literal of the given family into a sockaddr (EINVAL if it is not one).
SysError MakeSockaddr(int family, const std::string& address, uint16_t port,
                      sockaddr_storage* out, socklen_t* len);
// "1.2.3.4:80" or "[::1]:80", for messages.
std::string FormatEndpoint(int family, const std::string& address, uint16_t port);

}  // namespace meshd
