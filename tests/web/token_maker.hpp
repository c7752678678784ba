#pragma once
// Signed JSON Web Tokens for the auth tests, made with OpenSSL at test time:
// HS256 with a secret, RS256 and ES256 with keys generated per key_pair. No
// OpenSSL types here.

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace derive::webtest {

// A freshly generated key pair: RSA 2048 or EC P-256.
class key_pair {
 public:
  enum class kind { rsa, ec };
  explicit key_pair(kind k);
  ~key_pair();
  key_pair(const key_pair&) = delete;
  key_pair& operator=(const key_pair&) = delete;

  std::string public_pem() const;  // "-----BEGIN PUBLIC KEY-----..."
  // The signature over `data` with SHA-256: PKCS#1 v1.5 for RSA; for EC the
  // DER form (der = true) or the JWS form R || S.
  std::string sign(const std::string& data, bool der = false) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

std::string b64url(const std::string& bytes);
std::string hmac_sha256(const std::string& secret, const std::string& data);

// header.payload.signature; `header` defaults to {"alg":alg,"typ":"JWT"}.
std::string make_hs256(const std::string& secret, const nlohmann::json& payload,
                       nlohmann::json header = nullptr);
std::string make_signed(const key_pair& key, const std::string& alg,
                        const nlohmann::json& payload, bool der = false);
// An unsigned token ("alg": "none", empty signature).
std::string make_none(const nlohmann::json& payload);

// Seconds since the Unix epoch.
int64_t now_seconds();

}  // namespace derive::webtest
