# The meshd N-API addon: socket options and sockets opened inside other network namespaces.
# Built by scripts/build-native.mjs (node-gyp against the pinned Node's headers). Linux only.
{
  "targets": [
    {
      "target_name": "meshd_native",
      "sources": ["src/addon.cc", "src/sockopt.cc", "src/netns.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS!='linux'", {"type": "none", "sources": []}]
      ]
    }
  ]
}
