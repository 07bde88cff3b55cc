#include "sockopt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>

#include <cstring>

// Kernel constants that glibc's headers may lack; the Linux UAPI headers that define them
// clash with glibc's netinet/in.h, so they are spelled out here with their ABI values.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80  // linux/netfilter_ipv4.h
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80  // linux/netfilter_ipv6/ip6_tables.h
#endif
#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IP_FREEBIND
#define IP_FREEBIND 15
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif
#ifndef SO_MARK
#define SO_MARK 36
#endif
#ifndef SO_REUSEPORT
#define SO_REUSEPORT 15
#endif

namespace meshd {

namespace {

SysError SetIntOption(int fd, int level, int name, int value, const char* label) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return Fail(errno, "setsockopt", label);
  }
  return Ok();
}

SysError GetIntOption(int fd, int level, int name, int* value, const char* label) {
  socklen_t len = sizeof(*value);
  if (::getsockopt(fd, level, name, value, &len) != 0) return Fail(errno, "getsockopt", label);
  return Ok();
}

}  // namespace

SysError SetMark(int fd, uint32_t mark) {
  // SO_MARK takes the full 32-bit value; passing it through an int keeps the bit pattern.
  if (::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) {
    return Fail(errno, "setsockopt", "SO_MARK");
  }
  return Ok();
}

SysError GetMark(int fd, uint32_t* mark) {
  uint32_t value = 0;
  socklen_t len = sizeof(value);
  if (::getsockopt(fd, SOL_SOCKET, SO_MARK, &value, &len) != 0) {
    return Fail(errno, "getsockopt", "SO_MARK");
  }
  *mark = value;
  return Ok();
}

SysError SetTransparent(int fd, int family) {
  return family == 6 ? SetIntOption(fd, SOL_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT")
                     : SetIntOption(fd, SOL_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT");
}

SysError SetFreebind(int fd, int family) {
  return family == 6 ? SetIntOption(fd, SOL_IPV6, IPV6_FREEBIND, 1, "IPV6_FREEBIND")
                     : SetIntOption(fd, SOL_IP, IP_FREEBIND, 1, "IP_FREEBIND");
}

SysError SetReuseAddr(int fd) { return SetIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"); }

SysError SetReusePort(int fd) { return SetIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT"); }

SysError SetIpv6Only(int fd, bool on) {
  return SetIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, on ? 1 : 0, "IPV6_V6ONLY");
}

SysError SetLinger(int fd, bool on, int seconds) {
  const linger value{on ? 1 : 0, on ? seconds : 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &value, sizeof(value)) != 0) {
    return Fail(errno, "setsockopt", "SO_LINGER");
  }
  return Ok();
}

SysError GetLinger(int fd, bool* on, int* seconds) {
  linger value{};
  socklen_t len = sizeof(value);
  if (::getsockopt(fd, SOL_SOCKET, SO_LINGER, &value, &len) != 0) {
    return Fail(errno, "getsockopt", "SO_LINGER");
  }
  *on = value.l_onoff != 0;
  *seconds = value.l_linger;
  return Ok();
}

SysError SetTcpUserTimeout(int fd, uint32_t ms) {
  // The kernel takes an int and refuses negative values; callers pass at most INT32_MAX.
  return SetIntOption(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, static_cast<int>(ms), "TCP_USER_TIMEOUT");
}

SysError GetTcpUserTimeout(int fd, uint32_t* ms) {
  int value = 0;
  if (SysError err = GetIntOption(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &value, "TCP_USER_TIMEOUT")) {
    return err;
  }
  *ms = static_cast<uint32_t>(value);
  return Ok();
}

SysError SetTcpKeepalive(int fd, int idle_seconds, int interval_seconds, int count) {
  // The timings first, so the keepalive timer is armed once, with them (not with the 2 h
  // default first).
  SysError err;
  if ((err = SetIntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_seconds, "TCP_KEEPIDLE"))) return err;
  if ((err = SetIntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_seconds, "TCP_KEEPINTVL"))) {
    return err;
  }
  if ((err = SetIntOption(fd, IPPROTO_TCP, TCP_KEEPCNT, count, "TCP_KEEPCNT"))) return err;
  return SetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
}

SysError GetTcpKeepalive(int fd, Keepalive* out) {
  int enabled = 0;
  SysError err;
  if ((err = GetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE, &enabled, "SO_KEEPALIVE"))) return err;
  if ((err = GetIntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE, &out->idle_seconds, "TCP_KEEPIDLE"))) {
    return err;
  }
  if ((err = GetIntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL, &out->interval_seconds,
                          "TCP_KEEPINTVL"))) {
    return err;
  }
  if ((err = GetIntOption(fd, IPPROTO_TCP, TCP_KEEPCNT, &out->count, "TCP_KEEPCNT"))) return err;
  out->enabled = enabled != 0;
  return Ok();
}

SysError SocketFamily(int fd, int* family) {
  int domain = 0;
  socklen_t len = sizeof(domain);
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    return Fail(errno, "getsockopt", "SO_DOMAIN");
  }
  if (domain == AF_INET) {
    *family = 4;
  } else if (domain == AF_INET6) {
    *family = 6;
  } else {
    return Fail(EAFNOSUPPORT, "getsockopt", "SO_DOMAIN");
  }
  return Ok();
}

SysError OriginalDst(int fd, int family, Endpoint* out) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (family == 6) {
    sockaddr_in6 addr{};
    socklen_t len = sizeof(addr);
    if (::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &addr, &len) != 0) {
      return Fail(errno, "getsockopt", "IP6T_SO_ORIGINAL_DST");
    }
    ::inet_ntop(AF_INET6, &addr.sin6_addr, text, sizeof(text));
    out->port = ntohs(addr.sin6_port);
  } else {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    if (::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &addr, &len) != 0) {
      return Fail(errno, "getsockopt", "SO_ORIGINAL_DST");
    }
    ::inet_ntop(AF_INET, &addr.sin_addr, text, sizeof(text));
    out->port = ntohs(addr.sin_port);
  }
  out->address = text;
  return Ok();
}

SysError MakeSockaddr(int family, const std::string& address, uint16_t port,
                      sockaddr_storage* out, socklen_t* len) {
  std::memset(out, 0, sizeof(*out));
  if (family == 6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    if (::inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) != 1) {
      return Fail(EINVAL, "inet_pton", address);
    }
    *len = sizeof(*sin6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (::inet_pton(AF_INET, address.c_str(), &sin->sin_addr) != 1) {
      return Fail(EINVAL, "inet_pton", address);
    }
    *len = sizeof(*sin);
  }
  return Ok();
}

std::string FormatEndpoint(int family, const std::string& address, uint16_t port) {
  return family == 6 ? "[" + address + "]:" + std::to_string(port)
                     : address + ":" + std::to_string(port);
}

}  // namespace meshd
