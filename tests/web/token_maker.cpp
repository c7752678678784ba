#include "tests/web/token_maker.hpp"

#include <chrono>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

namespace derive::webtest {

struct key_pair::impl {
  EVP_PKEY* key = nullptr;
  kind k;
};

key_pair::key_pair(kind k) : impl_(std::make_unique<impl>()) {
  impl_->k = k;
  impl_->key = k == kind::rsa ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                              : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (!impl_->key) throw std::runtime_error("key generation failed");
}

key_pair::~key_pair() { EVP_PKEY_free(impl_->key); }

std::string key_pair::public_pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, impl_->key);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

std::string key_pair::sign(const std::string& data, bool der) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, impl_->key);
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                 data.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(data.data()), data.size());
  EVP_MD_CTX_free(ctx);
  sig.resize(len);
  if (impl_->k == kind::rsa || der) return sig;
  // DER ECDSA-Sig-Value to R || S, 32 bytes each.
  auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(s), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(s), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(s);
  return raw;
}

std::string b64url(const std::string& bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += alphabet[(v >> s) & 63];
  }
  if (bytes.size() - i == 1) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
  } else if (bytes.size() - i == 2) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
  }
  return out;
}

std::string hmac_sha256(const std::string& secret, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

std::string make_hs256(const std::string& secret, const nlohmann::json& payload,
                       nlohmann::json header) {
  if (header.is_null()) header = {{"alg", "HS256"}, {"typ", "JWT"}};
  std::string signed_part = b64url(header.dump()) + "." + b64url(payload.dump());
  return signed_part + "." + b64url(hmac_sha256(secret, signed_part));
}

std::string make_signed(const key_pair& key, const std::string& alg,
                        const nlohmann::json& payload, bool der) {
  nlohmann::json header = {{"alg", alg}, {"typ", "JWT"}};
  std::string signed_part = b64url(header.dump()) + "." + b64url(payload.dump());
  return signed_part + "." + b64url(key.sign(signed_part, der));
}

std::string make_none(const nlohmann::json& payload) {
  nlohmann::json header = {{"alg", "none"}, {"typ", "JWT"}};
  return b64url(header.dump()) + "." + b64url(payload.dump()) + ".";
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace derive::webtest
