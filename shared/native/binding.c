// Node-API glue: numbers cross as big-endian byte buffers, the layout of
// ciphertexts on the wire, so no BigInt is built per value on this side.
// Every argument is checked here and a bad one throws a TypeError/RangeError;
// nothing secret is ever put into a message.
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#include "decrypt_crt.h"
#include "multiexp.h"
#include "owner_encrypt.h"
#include "public_encrypt.h"

#define CHECK(call)                                                      \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, NULL, "fast-paillier: Node-API call failed"); \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

static int get_bytes(napi_env env, napi_value v, const uint8_t **data, size_t *len) {
  bool is;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return 0;
  void *p;
  if (napi_get_buffer_info(env, v, &p, len) != napi_ok) return 0;
  *data = p;
  return 1;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

/** A big-endian buffer into `limbs` limbs; 0 if it is not a buffer or does not fit. */
static int get_limbs(napi_env env, napi_value v, uint64_t *out, size_t limbs) {
  const uint8_t *data;
  size_t len;
  return get_bytes(env, v, &data, &len) && limbs_from_be(out, limbs, data, len);
}

/** Each kind of handle carries its tag: a handle of one kind passed where another is expected is refused,
 *  never read as the wrong struct. */
static const napi_type_tag OWNER_TAG = {0x6f776e6572656e63ULL, 0x8a1c2e4b5d6f7081ULL};
static const napi_type_tag DECRYPTOR_TAG = {0x6372746465637279ULL, 0x1f2e3d4c5b6a7988ULL};
static const napi_type_tag PUBLIC_TAG = {0x7075626c6963656eULL, 0x99a8b7c6d5e4f302ULL};

/** The handle in v if it is an External tagged `tag`; NULL (after throwing a RangeError) otherwise. */
static void *get_handle(napi_env env, napi_value v, const napi_type_tag *tag, const char *msg) {
  napi_valuetype t;
  bool ok = false;
  void *handle = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_check_object_type_tag(env, v, tag, &ok) != napi_ok ||
      !ok || napi_get_value_external(env, v, &handle) != napi_ok || !handle) {
    throw_range(env, msg);
    return NULL;
  }
  return handle;
}

/**
 * Wraps a handle in a tagged External; frees it (and throws) if Node-API fails.
 * `bytes` (the handle's tables: 4 MB for anyone's encryptor at 2048 bits, ~50
 * MB for the owner's) is reported to V8 as external memory, so that its
 * collector counts dropped keys by their tables and not by their few JS bytes;
 * the finalizer, which gets it as its hint, takes it back. Node runs these
 * finalizers once the event loop turns: a synchronous loop that builds and
 * drops many keys holds all their tables until it yields.
 */
static napi_value wrap_external(napi_env env, void *handle, napi_finalize finalize, const napi_type_tag *tag, size_t bytes) {
  napi_value out;
  if (napi_create_external(env, handle, finalize, (void *)(uintptr_t)bytes, &out) != napi_ok) {
    finalize(env, handle, NULL);
    napi_throw_error(env, NULL, "fast-paillier: Node-API call failed");
    return NULL;
  }
  int64_t total;
  napi_adjust_external_memory(env, (int64_t)bytes, &total);
  if (napi_type_tag_object(env, out, tag) != napi_ok) {
    napi_throw_error(env, NULL, "fast-paillier: Node-API call failed");
    return NULL; /* the External's finalizer frees the handle */
  }
  return out;
}

/** Gives back to V8 the external memory wrap_external reported for a handle (its finalizer's hint). */
static void release_external_memory(napi_env env, void *hint) {
  int64_t total;
  if (hint) napi_adjust_external_memory(env, -(int64_t)(uintptr_t)hint, &total);
}

static size_t fixed_base_bytes(const fixed_base *fb) { return sizeof(fixed_base) + fb->rows * fb->cols * fb->ctx.n * sizeof(uint64_t); }

static void finalize_encryptor(napi_env env, void *data, void *hint) {
  release_external_memory(env, hint);
  owner_encryptor_free(data);
}

// ownerEncryptor(n, p2, q2, hModP2, hModQ2, q2InvP2, windowBits, exponentBits) -> External
static napi_value owner_encryptor_js(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 8) return throw_range(env, "ownerEncryptor takes 8 arguments");
  // All six values arrive with one width: the longest of N, p^2 and q^2.
  const uint8_t *nb;
  size_t nlen;
  if (!get_bytes(env, argv[0], &nb, &nlen) || nlen == 0) return throw_range(env, "modulus must be a non-empty Buffer");
  const size_t L = (nlen + 7) / 8;
  if (L > MONT_MAX_LIMBS / 2) return throw_range(env, "modulus too large");
  uint64_t n[MONT_MAX_LIMBS], p2[MONT_MAX_LIMBS], q2[MONT_MAX_LIMBS], hp[MONT_MAX_LIMBS], hq[MONT_MAX_LIMBS],
      inv[MONT_MAX_LIMBS];
  uint32_t window_bits, exponent_bits;
  if (!get_limbs(env, argv[0], n, L) || !get_limbs(env, argv[1], p2, L) || !get_limbs(env, argv[2], q2, L) ||
      !get_limbs(env, argv[3], hp, L) || !get_limbs(env, argv[4], hq, L) || !get_limbs(env, argv[5], inv, L))
    return throw_range(env, "key values must be Buffers no longer than the first");
  if (!get_u32(env, argv[6], &window_bits) || !get_u32(env, argv[7], &exponent_bits) || exponent_bits > 4096)
    return throw_range(env, "window and exponent bits must be small integers");
  owner_encryptor *enc = owner_encryptor_new(L, n, p2, q2, hp, hq, inv, window_bits, exponent_bits);
  if (!enc) return throw_range(env, "unusable key for the owner's encryption (primes of unequal length?) or out of memory");
  return wrap_external(env, enc, finalize_encryptor, &OWNER_TAG,
                       sizeof(owner_encryptor) + fixed_base_bytes(enc->hp) + fixed_base_bytes(enc->hq));
}

// ownerEncrypt(encryptor, plaintexts, plaintextBytes, exponents, exponentBytes, cipherBytes) -> Buffer
static napi_value owner_encrypt_js(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 6) return throw_range(env, "ownerEncrypt takes 6 arguments");
  owner_encryptor *enc = get_handle(env, argv[0], &OWNER_TAG, "first argument must be an owner encryptor");
  if (!enc) return NULL;
  const uint8_t *pt, *ex;
  size_t pt_len, ex_len;
  uint32_t pw, ew, cw;
  if (!get_bytes(env, argv[1], &pt, &pt_len) || !get_u32(env, argv[2], &pw) || !get_bytes(env, argv[3], &ex, &ex_len) ||
      !get_u32(env, argv[4], &ew) || !get_u32(env, argv[5], &cw))
    return throw_range(env, "ownerEncrypt: expected (encryptor, Buffer, number, Buffer, number, number)");
  const size_t L = enc->limbs;
  if (pw == 0 || ew == 0 || pt_len % pw != 0 || ex_len % ew != 0 || pt_len / pw != ex_len / ew)
    return throw_range(env, "ownerEncrypt: plaintexts and exponents must be whole and equal in number");
  if (pw > 8 * L || ew > 8 * enc->exponent_limbs || cw > 16 * L)
    return throw_range(env, "ownerEncrypt: widths do not match the key");
  const size_t count = pt_len / pw;
  void *out_data;
  napi_value out;
  CHECK(napi_create_buffer(env, count * cw, &out_data, &out));
  uint8_t *out_bytes = out_data;
  uint64_t m[MONT_MAX_LIMBS], a[MONT_MAX_LIMBS], c[2 * MONT_MAX_LIMBS];
  for (size_t i = 0; i < count; i++) {
    limbs_from_be(m, L, pt + i * pw, pw);
    if (limbs_cmp(m, enc->n_ctx.m, L) >= 0) return throw_range(env, "ownerEncrypt: a plaintext is not below N");
    limbs_from_be(a, enc->exponent_limbs, ex + i * ew, ew);
    owner_encrypt(enc, c, m, a);
    if (!limbs_to_be(out_bytes + i * cw, cw, c, 2 * L)) return throw_range(env, "ownerEncrypt: ciphertext width too small");
  }
  return out;
}

static void finalize_decryptor(napi_env env, void *data, void *hint) {
  release_external_memory(env, hint);
  crt_decryptor_free(data);
}

static void finalize_public_encryptor(napi_env env, void *data, void *hint) {
  release_external_memory(env, hint);
  public_encryptor_free(data);
}

// crtDecryptor(n, p, q, hp, hq, qInvP) -> External; all six at one width (the longest of N, p^2 and q^2).
static napi_value crt_decryptor_js(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 6) return throw_range(env, "crtDecryptor takes 6 arguments");
  const uint8_t *nb;
  size_t nlen;
  if (!get_bytes(env, argv[0], &nb, &nlen) || nlen == 0) return throw_range(env, "modulus must be a non-empty Buffer");
  const size_t L = (nlen + 7) / 8;
  if (L > MONT_MAX_LIMBS / 2) return throw_range(env, "modulus too large");
  uint64_t n[MONT_MAX_LIMBS], p[MONT_MAX_LIMBS], q[MONT_MAX_LIMBS], hp[MONT_MAX_LIMBS], hq[MONT_MAX_LIMBS],
      inv[MONT_MAX_LIMBS];
  if (!get_limbs(env, argv[0], n, L) || !get_limbs(env, argv[1], p, L) || !get_limbs(env, argv[2], q, L) ||
      !get_limbs(env, argv[3], hp, L) || !get_limbs(env, argv[4], hq, L) || !get_limbs(env, argv[5], inv, L))
    return throw_range(env, "key values must be Buffers no longer than the first");
  crt_decryptor *dec = crt_decryptor_new(L, n, p, q, hp, hq, inv);
  if (!dec) return throw_range(env, "unusable key for CRT decryption (factors that do not multiply to N?) or out of memory");
  return wrap_external(env, dec, finalize_decryptor, &DECRYPTOR_TAG, sizeof(crt_decryptor));
}

// crtDecrypt(decryptor, ciphertexts, cipherBytes, plainBytes) -> Buffer
static napi_value crt_decrypt_js(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4) return throw_range(env, "crtDecrypt takes 4 arguments");
  crt_decryptor *dec = get_handle(env, argv[0], &DECRYPTOR_TAG, "first argument must be a CRT decryptor");
  if (!dec) return NULL;
  const uint8_t *ct;
  size_t ct_len;
  uint32_t cw, pw;
  if (!get_bytes(env, argv[1], &ct, &ct_len) || !get_u32(env, argv[2], &cw) || !get_u32(env, argv[3], &pw))
    return throw_range(env, "crtDecrypt: expected (decryptor, Buffer, number, number)");
  const size_t L = dec->limbs;
  if (cw == 0 || ct_len % cw != 0) return throw_range(env, "crtDecrypt: ciphertexts must be whole");
  if (cw > 16 * L || pw == 0 || pw > 8 * L) return throw_range(env, "crtDecrypt: widths do not match the key");
  const size_t count = ct_len / cw;
  void *out_data;
  napi_value out;
  CHECK(napi_create_buffer(env, count * pw, &out_data, &out));
  uint8_t *out_bytes = out_data;
  uint64_t c[2 * MONT_MAX_LIMBS], m[MONT_MAX_LIMBS];
  for (size_t i = 0; i < count; i++) {
    limbs_from_be(c, 2 * L, ct + i * cw, cw);
    if (crt_decrypt(dec, m, c) != 0)
      return throw_range(env, "crtDecrypt: a ciphertext is out of range (0 or not below N^2) or shares a factor with N");
    if (!limbs_to_be(out_bytes + i * pw, pw, m, L)) return throw_range(env, "crtDecrypt: plaintext width too small");
  }
  return out;
}

// publicEncryptor(n, h, windowBits, exponentBits) -> External; h at twice the width of n.
static napi_value public_encryptor_js(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4) return throw_range(env, "publicEncryptor takes 4 arguments");
  const uint8_t *nb;
  size_t nlen;
  if (!get_bytes(env, argv[0], &nb, &nlen) || nlen == 0) return throw_range(env, "modulus must be a non-empty Buffer");
  const size_t L = (nlen + 7) / 8;
  if (L > MONT_MAX_LIMBS / 2) return throw_range(env, "modulus too large");
  uint64_t n[MONT_MAX_LIMBS], h[2 * MONT_MAX_LIMBS];
  uint32_t window_bits, exponent_bits;
  if (!get_limbs(env, argv[0], n, L) || !get_limbs(env, argv[1], h, 2 * L))
    return throw_range(env, "publicEncryptor: the base must be a Buffer no longer than twice the modulus");
  if (!get_u32(env, argv[2], &window_bits) || !get_u32(env, argv[3], &exponent_bits) || window_bits > 12 ||
      exponent_bits > 4096)
    return throw_range(env, "window and exponent bits must be small integers");
  public_encryptor *enc = public_encryptor_new(L, n, h, window_bits, exponent_bits);
  if (!enc) return throw_range(env, "unusable key for encryption (even modulus, base not in (0, N^2)?) or out of memory");
  return wrap_external(env, enc, finalize_public_encryptor, &PUBLIC_TAG, sizeof(public_encryptor) + fixed_base_bytes(enc->h));
}

// publicEncrypt(encryptor, plaintexts, plaintextBytes, exponents, exponentBytes, cipherBytes) -> Buffer
static napi_value public_encrypt_js(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 6) return throw_range(env, "publicEncrypt takes 6 arguments");
  public_encryptor *enc = get_handle(env, argv[0], &PUBLIC_TAG, "first argument must be a public encryptor");
  if (!enc) return NULL;
  const uint8_t *pt, *ex;
  size_t pt_len, ex_len;
  uint32_t pw, ew, cw;
  if (!get_bytes(env, argv[1], &pt, &pt_len) || !get_u32(env, argv[2], &pw) || !get_bytes(env, argv[3], &ex, &ex_len) ||
      !get_u32(env, argv[4], &ew) || !get_u32(env, argv[5], &cw))
    return throw_range(env, "publicEncrypt: expected (encryptor, Buffer, number, Buffer, number, number)");
  const size_t L = enc->limbs;
  if (pw == 0 || ew == 0 || pt_len % pw != 0 || ex_len % ew != 0 || pt_len / pw != ex_len / ew)
    return throw_range(env, "publicEncrypt: plaintexts and exponents must be whole and equal in number");
  if (pw > 8 * L || ew > 8 * enc->exponent_limbs || cw > 16 * L)
    return throw_range(env, "publicEncrypt: widths do not match the key");
  const size_t count = pt_len / pw;
  void *out_data;
  napi_value out;
  CHECK(napi_create_buffer(env, count * cw, &out_data, &out));
  uint8_t *out_bytes = out_data;
  uint64_t m[MONT_MAX_LIMBS], a[MONT_MAX_LIMBS], c[2 * MONT_MAX_LIMBS];
  for (size_t i = 0; i < count; i++) {
    limbs_from_be(m, L, pt + i * pw, pw);
    if (limbs_cmp(m, enc->n_ctx.m, L) >= 0) return throw_range(env, "publicEncrypt: a plaintext is not below N");
    limbs_from_be(a, enc->exponent_limbs, ex + i * ew, ew);
    public_encrypt(enc, c, m, a);
    if (!limbs_to_be(out_bytes + i * cw, cw, c, 2 * L)) return throw_range(env, "publicEncrypt: ciphertext width too small");
  }
  return out;
}

// multiExp(modulus, bases, baseBytes, exponents, exponentBytes, windowBits) -> Buffer (modulus' byte length)
static napi_value multi_exp_js(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 6) return throw_range(env, "multiExp takes 6 arguments");
  const uint8_t *mb, *bb, *eb;
  size_t m_len, b_len, e_len;
  uint32_t bw, ew, window;
  if (!get_bytes(env, argv[0], &mb, &m_len) || !get_bytes(env, argv[1], &bb, &b_len) || !get_u32(env, argv[2], &bw) ||
      !get_bytes(env, argv[3], &eb, &e_len) || !get_u32(env, argv[4], &ew) || !get_u32(env, argv[5], &window))
    return throw_range(env, "multiExp: expected (Buffer, Buffer, number, Buffer, number, number)");
  const size_t n = (m_len + 7) / 8;
  if (n == 0 || n > MONT_MAX_LIMBS) return throw_range(env, "multiExp: unsupported modulus size");
  if (bw == 0 || ew == 0 || b_len % bw != 0 || e_len % ew != 0 || b_len / bw != e_len / ew || bw > 8 * n)
    return throw_range(env, "multiExp: bases and exponents must be whole and equal in number");
  if (window == 0 || window > 20) return throw_range(env, "multiExp: window must be 1..20 bits");
  if (ew > 8 * MONT_MAX_LIMBS) return throw_range(env, "multiExp: exponents too long");
  mont_ctx *ctx = malloc(sizeof(mont_ctx));
  if (!ctx) return throw_range(env, "multiExp: out of memory");
  uint64_t m[MONT_MAX_LIMBS];
  limbs_from_be(m, n, mb, m_len);
  if (mont_init(ctx, m, n) != 0) {
    free(ctx);
    return throw_range(env, "multiExp: modulus must be odd");
  }
  const size_t count = b_len / bw, e_limbs = (ew + 7) / 8;
  uint64_t *bases = malloc((count ? count : 1) * n * sizeof(uint64_t));
  uint64_t *exps = malloc((count ? count : 1) * e_limbs * sizeof(uint64_t));
  napi_value result = NULL;
  if (!bases || !exps) {
    throw_range(env, "multiExp: out of memory");
    goto done;
  }
  for (size_t i = 0; i < count; i++) {
    limbs_from_be(bases + i * n, n, bb + i * bw, bw);
    if (limbs_cmp(bases + i * n, ctx->m, n) >= 0) {
      throw_range(env, "multiExp: a base is not below the modulus");
      goto done;
    }
    limbs_from_be(exps + i * e_limbs, e_limbs, eb + i * ew, ew);
  }
  uint64_t r[MONT_MAX_LIMBS];
  if (multiexp(ctx, r, bases, exps, e_limbs, count, window) != 0) {
    throw_range(env, "multiExp: out of memory");
    goto done;
  }
  void *out_data;
  if (napi_create_buffer(env, m_len, &out_data, &result) != napi_ok) {
    napi_throw_error(env, NULL, "fast-paillier: Node-API call failed");
    result = NULL;
    goto done;
  }
  limbs_to_be(out_data, m_len, r, n);
done:
  free(ctx);
  free(bases);
  free(exps);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"ownerEncryptor", NULL, owner_encryptor_js, NULL, NULL, NULL, napi_default, NULL},
      {"ownerEncrypt", NULL, owner_encrypt_js, NULL, NULL, NULL, napi_default, NULL},
      {"multiExp", NULL, multi_exp_js, NULL, NULL, NULL, napi_default, NULL},
      {"crtDecryptor", NULL, crt_decryptor_js, NULL, NULL, NULL, napi_default, NULL},
      {"crtDecrypt", NULL, crt_decrypt_js, NULL, NULL, NULL, napi_default, NULL},
      {"publicEncryptor", NULL, public_encryptor_js, NULL, NULL, NULL, napi_default, NULL},
      {"publicEncrypt", NULL, public_encrypt_js, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
