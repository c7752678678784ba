#include "web/jwt.hpp"

#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

namespace derive::web {
namespace {

using nlohmann::json;

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

status invalid(std::string message) { return {errc::invalid_parameter, std::move(message)}; }

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

bool is_p256(EVP_PKEY* key) {
  char name[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(key, name, sizeof name, &len) != 1) return false;
  std::string_view n(name, len);
  return n == "prime256v1" || n == "P-256" || n == "secp256r1";
}

// Verifies `sig` over `data` with SHA-256 and `key` (DER signature for EC).
bool digest_verify(EVP_PKEY* key, std::string_view data, const std::string& sig) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(data.data()),
                             data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

// JWS ES256 signatures are R || S, 32 bytes each (RFC 7518 section 3.4);
// OpenSSL verifies DER. nullopt: not 64 bytes (a DER signature is refused).
std::optional<std::string> raw_to_der(const std::string& raw) {
  if (raw.size() != 64) return std::nullopt;
  auto* u = reinterpret_cast<const unsigned char*>(raw.data());
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(u, 32, nullptr);
  BIGNUM* s = BN_bin2bn(u + 32, 32, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (len <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::optional<json> parse_part(std::string_view part) {
  auto text = base64url_decode(part);
  if (!text) return std::nullopt;
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// A NumericDate claim as whole seconds; nullopt when it is not a number or
// lies outside 0 .. 2^53 (so that no arithmetic on it can overflow).
std::optional<int64_t> numeric_date(const json& v) {
  constexpr double max_date = 9007199254740992.0;  // 2^53
  double d = 0;
  if (v.is_number_unsigned()) d = static_cast<double>(v.get<uint64_t>());
  else if (v.is_number_integer()) d = static_cast<double>(v.get<int64_t>());
  else if (v.is_number_float()) d = v.get<double>();
  else return std::nullopt;
  if (!(d >= 0 && d <= max_date)) return std::nullopt;
  return static_cast<int64_t>(d);
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += alphabet[(acc << (6 - bits)) & 63];
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = b64_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical
  return out;
}

struct jwt_verifier::impl {
  token_options options;
  std::vector<pkey_ptr> rsa_keys;
  std::vector<pkey_ptr> ec_keys;

  status load_pem(const std::string& pem, const std::string& where) {
    size_t blocks = 0;
    for (size_t at = pem.find("-----BEGIN"); at != std::string::npos;
         at = pem.find("-----BEGIN", at + 1)) {
      ++blocks;
    }
    if (blocks == 0) return invalid(where + " holds no PEM public key");
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (!bio) return invalid("cannot read " + where);
    size_t loaded = 0;
    status st;
    while (EVP_PKEY* raw = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr)) {
      pkey_ptr key(raw);
      ++loaded;
      if (EVP_PKEY_get_base_id(raw) == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(raw) < 2048) {
          st = invalid(where + ": RSA keys must have at least 2048 bits");
          break;
        }
        rsa_keys.push_back(std::move(key));
      } else if (EVP_PKEY_get_base_id(raw) == EVP_PKEY_EC && is_p256(raw)) {
        ec_keys.push_back(std::move(key));
      } else {
        st = invalid(where + ": public key " + std::to_string(loaded) +
                     " is neither RSA (RS256) nor EC P-256 (ES256)");
        break;
      }
    }
    BIO_free(bio);
    ERR_clear_error();
    if (!st) return st;
    if (loaded != blocks) {
      return invalid(where + ": PEM block " + std::to_string(loaded + 1) +
                     " is not a public key (\"-----BEGIN PUBLIC KEY-----\")");
    }
    return {};
  }

  // The signature check for `alg`; only keys of that algorithm's own type
  // are tried, so a public key can never serve as an HMAC secret.
  status check_signature(const std::string& alg, std::string_view signed_part,
                         const std::string& sig) const {
    if (alg == "HS256") {
      if (options.hs256_secret.empty()) return invalid("HS256 tokens are not accepted here");
      unsigned char mac[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (!HMAC(EVP_sha256(), options.hs256_secret.data(),
                static_cast<int>(options.hs256_secret.size()),
                reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(),
                mac, &len)) {
        return invalid("the token's signature cannot be checked");
      }
      if (sig.size() != len || CRYPTO_memcmp(sig.data(), mac, len) != 0) {
        return invalid("the token's signature is not valid");
      }
      return {};
    }
    if (alg == "RS256") {
      if (rsa_keys.empty()) return invalid("RS256 tokens are not accepted here");
      for (const auto& k : rsa_keys) {
        if (digest_verify(k.get(), signed_part, sig)) return {};
      }
      return invalid("the token's signature is not valid");
    }
    if (alg == "ES256") {
      if (ec_keys.empty()) return invalid("ES256 tokens are not accepted here");
      auto der = raw_to_der(sig);
      if (!der) return invalid("an ES256 signature must be 64 bytes (R || S)");
      for (const auto& k : ec_keys) {
        if (digest_verify(k.get(), signed_part, *der)) return {};
      }
      return invalid("the token's signature is not valid");
    }
    return invalid("the token's algorithm \"" + alg +
                   "\" is not accepted; use HS256, RS256 or ES256");
  }

  status check_claims(const json& c, int64_t now) const {
    int64_t leeway = options.leeway.count();
    auto exp_it = c.find("exp");
    if (exp_it == c.end()) return invalid("the token has no \"exp\" (expiry) claim");
    auto exp = numeric_date(*exp_it);
    if (!exp) return invalid("the token's \"exp\" is not a NumericDate (seconds since 1970)");
    if (now >= *exp + leeway) return invalid("the token expired; get a new one");
    if (auto nbf_it = c.find("nbf"); nbf_it != c.end()) {
      auto nbf = numeric_date(*nbf_it);
      if (!nbf) return invalid("the token's \"nbf\" is not a NumericDate (seconds since 1970)");
      if (now + leeway < *nbf) return invalid("the token is not valid yet (\"nbf\")");
    }
    if (!options.issuer.empty()) {
      auto iss = c.find("iss");
      if (iss == c.end() || !iss->is_string() || *iss != options.issuer) {
        return invalid("the token's issuer (\"iss\") is not " + options.issuer);
      }
    }
    if (!options.audience.empty()) {
      auto aud = c.find("aud");
      bool ok = false;
      if (aud != c.end() && aud->is_string()) ok = *aud == options.audience;
      if (aud != c.end() && aud->is_array()) {
        for (const auto& a : *aud) ok = ok || (a.is_string() && a == options.audience);
      }
      if (!ok) return invalid("the token's audience (\"aud\") does not include " + options.audience);
    }
    auto sub = c.find("sub");
    if (sub == c.end() || !sub->is_string() || sub->get_ref<const std::string&>().empty()) {
      return invalid("the token has no \"sub\" (subject) claim");
    }
    return {};
  }
};

jwt_verifier::jwt_verifier(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
jwt_verifier::jwt_verifier(jwt_verifier&&) noexcept = default;
jwt_verifier& jwt_verifier::operator=(jwt_verifier&&) noexcept = default;
jwt_verifier::~jwt_verifier() = default;

result<jwt_verifier> jwt_verifier::make(const token_options& options) {
  auto p = std::make_unique<impl>();
  p->options = options;
  if (!options.public_keys_pem.empty()) {
    if (auto st = p->load_pem(options.public_keys_pem, "token_options::public_keys_pem"); !st) {
      return st;
    }
  }
  if (!options.public_keys_file.empty()) {
    std::ifstream in(options.public_keys_file, std::ios::binary);
    if (!in) return invalid("cannot read the public key file " + options.public_keys_file);
    std::stringstream text;
    text << in.rdbuf();
    if (auto st = p->load_pem(text.str(), options.public_keys_file); !st) return st;
  }
  if (options.hs256_secret.empty() && p->rsa_keys.empty() && p->ec_keys.empty()) {
    return invalid("authentication needs an HS256 secret or public keys to verify tokens");
  }
  return jwt_verifier(std::move(p));
}

result<token_claims> jwt_verifier::verify(std::string_view token, int64_t now) const {
  auto dot1 = token.find('.');
  auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return invalid("the token is not a JWT (header.payload.signature)");
  }
  auto header = parse_part(token.substr(0, dot1));
  if (!header) return invalid("the token's header is not base64url-encoded JSON");
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string()) return invalid("the token's header has no \"alg\"");
  if (header->contains("crit")) return invalid("the token's header has \"crit\" extensions");
  auto sig = base64url_decode(token.substr(dot2 + 1));
  if (!sig) return invalid("the token's signature is not base64url");
  if (auto st = impl_->check_signature(alg->get<std::string>(), token.substr(0, dot2), *sig); !st) return st;
  // Only a token whose signature holds is read further.
  auto payload = parse_part(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload) return invalid("the token's payload is not base64url-encoded JSON");
  if (auto st = impl_->check_claims(*payload, now); !st) return st;

  token_claims out;
  out.sub = (*payload)["sub"].get<std::string>();
  out.expires = *numeric_date((*payload)["exp"]);
  for (auto& [name, v] : payload->items()) {
    if (v.is_string()) out.strings[name] = v.get<std::string>();
  }
  auto add_scopes = [&](const json& v) {
    if (v.is_array()) {
      for (const auto& s : v) {
        if (s.is_string()) out.scopes.insert(s.get<std::string>());
      }
    } else if (v.is_string()) {
      std::istringstream words(v.get<std::string>());
      for (std::string w; words >> w;) out.scopes.insert(w);
    }
  };
  if (auto it = payload->find("scope"); it != payload->end()) add_scopes(*it);
  if (auto it = payload->find("scp"); it != payload->end()) add_scopes(*it);
  return out;
}

}  // namespace derive::web
