// N-API surface of the addon: argument conversion and error objects only; the syscalls live in
// sockopt.cc and netns.cc. C++ exceptions are disabled: every failure sets a pending JS
// exception and returns undefined. The TypeScript side (daemon/native/index.ts) declares these
// functions and daemon/net validates every argument before calling them.
#include <malloc.h>
#include <napi.h>
#include <string.h>

#include <cstdint>
#include <string>

#include "netns.h"
#include "sockopt.h"

namespace {

using meshd::SysError;

std::string ErrnoName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* name = ::strerrorname_np(err)) return name;
#endif
  return "E" + std::to_string(err);
}

// A JS Error shaped like Node's system errors: errno (positive), code ('ENOENT'), syscall,
// plus detail (option, path or address) and netns when the call happened in a namespace.
// The message names the call and what it was about; daemon/net adds the namespace.
Napi::Value ThrowSysError(Napi::Env env, const SysError& e, const std::string& netns = "") {
  std::string message = e.syscall;
  if (!e.detail.empty()) message += " " + e.detail;
  message += ": " + std::string(::strerror(e.err)) + " (" + ErrnoName(e.err) + ")";

  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, e.err));
  error.Set("code", Napi::String::New(env, ErrnoName(e.err)));
  error.Set("syscall", Napi::String::New(env, e.syscall));
  if (!e.detail.empty()) error.Set("detail", Napi::String::New(env, e.detail));
  if (!netns.empty()) error.Set("netns", Napi::String::New(env, netns));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool ReadFd(const Napi::CallbackInfo& info, size_t index, int* fd) {
  if (info.Length() <= index || !info[index].IsNumber()) return false;
  const int64_t value = info[index].As<Napi::Number>().Int64Value();
  if (value < 0 || value > INT32_MAX) return false;
  *fd = static_cast<int>(value);
  return true;
}

bool ReadFamily(const Napi::CallbackInfo& info, size_t index, int* family) {
  if (info.Length() <= index || !info[index].IsNumber()) return false;
  const int32_t value = info[index].As<Napi::Number>().Int32Value();
  if (value != 4 && value != 6) return false;
  *family = value;
  return true;
}

// fn(fd, family): the family-dependent options.
template <SysError (*Op)(int, int)>
Napi::Value FdFamilyOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  int family = 0;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  if (!ReadFamily(info, 1, &family)) return ThrowType(env, "family must be 4 or 6");
  if (SysError err = Op(fd, family)) return ThrowSysError(env, err);
  return env.Undefined();
}

Napi::Value SetReusePort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  if (SysError err = meshd::SetReusePort(fd)) return ThrowSysError(env, err);
  return env.Undefined();
}

Napi::Value SetMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  if (info.Length() < 2 || !info[1].IsNumber()) return ThrowType(env, "mark must be a number");
  const uint32_t mark = info[1].As<Napi::Number>().Uint32Value();
  if (SysError err = meshd::SetMark(fd, mark)) return ThrowSysError(env, err);
  return env.Undefined();
}

Napi::Value GetMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  uint32_t mark = 0;
  if (SysError err = meshd::GetMark(fd, &mark)) return ThrowSysError(env, err);
  return Napi::Number::New(env, mark);
}

// A non-negative int argument (the TypeScript side has checked the range; this only keeps a
// stray value from reaching the kernel as something else).
bool ReadNonNegativeInt(const Napi::CallbackInfo& info, size_t index, int* out) {
  if (info.Length() <= index || !info[index].IsNumber()) return false;
  const int64_t value = info[index].As<Napi::Number>().Int64Value();
  if (value < 0 || value > INT32_MAX) return false;
  *out = static_cast<int>(value);
  return true;
}

Napi::Value SetLinger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  int seconds = 0;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  if (info.Length() < 2 || !info[1].IsBoolean()) return ThrowType(env, "on must be a boolean");
  if (!ReadNonNegativeInt(info, 2, &seconds)) {
    return ThrowType(env, "seconds must be a non-negative integer");
  }
  const bool on = info[1].As<Napi::Boolean>().Value();
  if (SysError err = meshd::SetLinger(fd, on, seconds)) return ThrowSysError(env, err);
  return env.Undefined();
}

Napi::Value GetLinger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  bool on = false;
  int seconds = 0;
  if (SysError err = meshd::GetLinger(fd, &on, &seconds)) return ThrowSysError(env, err);
  Napi::Object result = Napi::Object::New(env);
  result.Set("on", Napi::Boolean::New(env, on));
  result.Set("seconds", Napi::Number::New(env, seconds));
  return result;
}

Napi::Value SetSendBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  int bytes = 0;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  if (!ReadNonNegativeInt(info, 1, &bytes)) {
    return ThrowType(env, "bytes must be a non-negative integer");
  }
  if (SysError err = meshd::SetSendBuffer(fd, bytes)) return ThrowSysError(env, err);
  return env.Undefined();
}

Napi::Value GetSendBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  int bytes = 0;
  if (SysError err = meshd::GetSendBuffer(fd, &bytes)) return ThrowSysError(env, err);
  return Napi::Number::New(env, bytes);
}

Napi::Value SetTcpUserTimeout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  int ms = 0;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  if (!ReadNonNegativeInt(info, 1, &ms)) return ThrowType(env, "ms must be a non-negative integer");
  if (SysError err = meshd::SetTcpUserTimeout(fd, static_cast<uint32_t>(ms))) {
    return ThrowSysError(env, err);
  }
  return env.Undefined();
}

Napi::Value GetTcpUserTimeout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  uint32_t ms = 0;
  if (SysError err = meshd::GetTcpUserTimeout(fd, &ms)) return ThrowSysError(env, err);
  return Napi::Number::New(env, ms);
}

Napi::Value SetTcpKeepalive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  int idle = 0, interval = 0, count = 0;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  if (!ReadNonNegativeInt(info, 1, &idle) || !ReadNonNegativeInt(info, 2, &interval) ||
      !ReadNonNegativeInt(info, 3, &count)) {
    return ThrowType(env, "idle, interval and count must be non-negative integers");
  }
  if (SysError err = meshd::SetTcpKeepalive(fd, idle, interval, count)) {
    return ThrowSysError(env, err);
  }
  return env.Undefined();
}

Napi::Value GetTcpKeepalive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  meshd::Keepalive ka;
  if (SysError err = meshd::GetTcpKeepalive(fd, &ka)) return ThrowSysError(env, err);
  Napi::Object result = Napi::Object::New(env);
  result.Set("enabled", Napi::Boolean::New(env, ka.enabled));
  result.Set("idleSeconds", Napi::Number::New(env, ka.idle_seconds));
  result.Set("intervalSeconds", Napi::Number::New(env, ka.interval_seconds));
  result.Set("count", Napi::Number::New(env, ka.count));
  return result;
}

Napi::Value SocketFamily(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  int family = 0;
  if (SysError err = meshd::SocketFamily(fd, &family)) return ThrowSysError(env, err);
  return Napi::Number::New(env, family);
}

Napi::Value OriginalDst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  int family = 0;
  if (!ReadFd(info, 0, &fd)) return ThrowType(env, "fd must be a non-negative integer");
  if (!ReadFamily(info, 1, &family)) return ThrowType(env, "family must be 4 or 6");
  meshd::Endpoint dst;
  if (SysError err = meshd::OriginalDst(fd, family, &dst)) return ThrowSysError(env, err);
  Napi::Object result = Napi::Object::New(env);
  result.Set("address", Napi::String::New(env, dst.address));
  result.Set("port", Napi::Number::New(env, dst.port));
  return result;
}

// Option readers for socketInNetns: absent (undefined) keeps the default; a wrong type is a
// TypeError naming the option. They return false with the exception pending.
bool OptBool(Napi::Object opts, const char* key, bool* out) {
  Napi::Value v = opts.Get(key);
  if (v.IsUndefined()) return true;
  if (!v.IsBoolean()) {
    ThrowType(opts.Env(), std::string("socketInNetns: ") + key + " must be a boolean");
    return false;
  }
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

bool OptUint(Napi::Object opts, const char* key, uint32_t max, bool* present, uint32_t* out) {
  Napi::Value v = opts.Get(key);
  if (v.IsUndefined()) return true;
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= max && d == static_cast<double>(static_cast<uint64_t>(d)))) {
    ThrowType(opts.Env(), std::string("socketInNetns: ") + key + " must be an integer 0.." +
                              std::to_string(max));
    return false;
  }
  *present = true;
  *out = static_cast<uint32_t>(d);
  return true;
}

bool OptString(Napi::Object opts, const char* key, bool required, bool* present, std::string* out) {
  Napi::Value v = opts.Get(key);
  if (v.IsUndefined() && !required) return true;
  if (!v.IsString()) {
    ThrowType(opts.Env(), std::string("socketInNetns: ") + key + " must be a string");
    return false;
  }
  *present = true;
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

bool ReadSpec(Napi::Object opts, meshd::NetnsSocketSpec* spec) {
  bool has_path = false, has_address = false, has_port = false, has_backlog = false;
  bool has_family = false;
  uint32_t family = 0, port = 0, backlog = 511;
  if (!OptString(opts, "netnsPath", true, &has_path, &spec->netns_path)) return false;
  if (!OptUint(opts, "family", 6, &has_family, &family)) return false;
  if (family != 4 && family != 6) {
    ThrowType(opts.Env(), "socketInNetns: family must be 4 or 6");
    return false;
  }
  if (!OptBool(opts, "listen", &spec->listen)) return false;
  if (!OptString(opts, "address", false, &has_address, &spec->address)) return false;
  if (!OptUint(opts, "port", 65535, &has_port, &port)) return false;
  if (!OptUint(opts, "backlog", INT32_MAX, &has_backlog, &backlog)) return false;
  if (!OptUint(opts, "mark", UINT32_MAX, &spec->has_mark, &spec->mark)) return false;
  if (!OptBool(opts, "transparent", &spec->transparent)) return false;
  if (!OptBool(opts, "freebind", &spec->freebind)) return false;
  if (!OptBool(opts, "reusePort", &spec->reuse_port)) return false;
  if (!OptBool(opts, "ipv6Only", &spec->ipv6_only)) return false;
  if (!OptUint(opts, "linger", 65535, &spec->has_linger, &spec->linger)) return false;
  spec->reuse_addr = spec->listen;  // default: on for listeners (restart-friendly), else off
  if (!OptBool(opts, "reuseAddr", &spec->reuse_addr)) return false;

  spec->family = static_cast<int>(family);
  spec->port = static_cast<uint16_t>(port);
  spec->backlog = static_cast<int>(backlog);
  // A listener always binds (to the wildcard address if none was given); other sockets bind
  // only when asked to, so that the kernel picks the source at connect time.
  spec->bind = spec->listen || has_address || has_port;
  if (spec->bind && !has_address) spec->address = spec->family == 6 ? "::" : "0.0.0.0";
  return true;
}

Napi::Value SocketInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    return ThrowType(env, "socketInNetns: options must be an object");
  }
  meshd::NetnsSocketSpec spec;
  if (!ReadSpec(info[0].As<Napi::Object>(), &spec)) return env.Undefined();
  int fd = -1;
  if (SysError err = meshd::SocketInNetns(spec, &fd)) return ThrowSysError(env, err, spec.netns_path);
  return Napi::Number::New(env, fd);
}

// malloc_trim(0): gives the pages of freed malloc memory in every arena back to the kernel.
// After a burst of traffic glibc keeps the freed 64 KiB socket and HTTP/2 buffers; this is the
// only way to shrink that without slowing every allocation (docs/benchmarks.md, Agent memory).
Napi::Value TrimMemory(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), ::malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("originalDst", Napi::Function::New<OriginalDst>(env, "originalDst"));
  exports.Set("setMark", Napi::Function::New<SetMark>(env, "setMark"));
  exports.Set("getMark", Napi::Function::New<GetMark>(env, "getMark"));
  exports.Set("setTransparent",
              Napi::Function::New<FdFamilyOp<meshd::SetTransparent>>(env, "setTransparent"));
  exports.Set("setFreebind", Napi::Function::New<FdFamilyOp<meshd::SetFreebind>>(env, "setFreebind"));
  exports.Set("setReusePort", Napi::Function::New<SetReusePort>(env, "setReusePort"));
  exports.Set("setLinger", Napi::Function::New<SetLinger>(env, "setLinger"));
  exports.Set("getLinger", Napi::Function::New<GetLinger>(env, "getLinger"));
  exports.Set("setSendBuffer", Napi::Function::New<SetSendBuffer>(env, "setSendBuffer"));
  exports.Set("getSendBuffer", Napi::Function::New<GetSendBuffer>(env, "getSendBuffer"));
  exports.Set("setTcpUserTimeout", Napi::Function::New<SetTcpUserTimeout>(env, "setTcpUserTimeout"));
  exports.Set("getTcpUserTimeout", Napi::Function::New<GetTcpUserTimeout>(env, "getTcpUserTimeout"));
  exports.Set("setTcpKeepalive", Napi::Function::New<SetTcpKeepalive>(env, "setTcpKeepalive"));
  exports.Set("getTcpKeepalive", Napi::Function::New<GetTcpKeepalive>(env, "getTcpKeepalive"));
  exports.Set("socketFamily", Napi::Function::New<SocketFamily>(env, "socketFamily"));
  exports.Set("socketInNetns", Napi::Function::New<SocketInNetns>(env, "socketInNetns"));
  exports.Set("trimMemory", Napi::Function::New<TrimMemory>(env, "trimMemory"));
  return exports;
}

}  // namespace

NODE_API_MODULE(meshd_native, Init)
