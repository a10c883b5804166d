{
  "targets": [
    {
      "target_name": "fast_paillier",
      "sources": [
        "native/binding.c",
        "native/montgomery.c",
        "native/fixed_base.c",
        "native/owner_encrypt.c",
        "native/multiexp.c",
        "native/decrypt_crt.c",
        "native/public_encrypt.c"
      ],
      "cflags": ["-O3", "-std=c11", "-Wall", "-Wextra"],
      "cflags!": ["-O2"]
    }
  ]
}
