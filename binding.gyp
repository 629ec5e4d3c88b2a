{
  "targets": [
    {
      "target_name": "posix",
      "sources": ["native/posix.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
