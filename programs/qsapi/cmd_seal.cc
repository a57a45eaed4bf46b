// qsapi seal | open: sealed messages (HPKE with post-quantum KEMs) for files and streams.
//
//   qsapi seal --to PUBKEY [--in F|-] [--out F|-] [--aead A] [--kdf K] [--chunk-size N]
//   qsapi open --key NAME [--in F|-] [--out F|-]
//
// The work is in sealed_files.cc (atomic output, progress) and the library (qsapi/hpke). `open`
// takes its private key from LoadRecipientKey (recipient_key_loader.h), which the keystore
// replaces; private keys are never read from or written to plain files.
#include <cstdlib>
#include <string>

#include "commands.h"
#include "qsapi/hpke/container.h"
#include "qsapi/hpke/hpke.h"
#include "recipient_key_loader.h"
#include "sealed_files.h"

namespace qsapi::cli {
namespace {

struct SealFlags {
  std::string to;
  std::string in = "-";
  std::string out = "-";
  std::string aead = "ChaCha20-Poly1305";
  std::string kdf;  // default: by KEM (DefaultKdf)
  std::uint32_t chunk_size = hpke::kDefaultChunkSize;
  bool no_progress = false;
};

struct OpenFlags {
  std::string key;
  StoreFlags store;
  std::string in = "-";
  std::string out = "-";
  bool no_progress = false;
};

Status RunSeal(const SealFlags& f) {
  QSAPI_ASSIGN_OR_RETURN(const hpke::RecipientPublicKey recipient, ReadPublicKeyFile(f.to));
  QSAPI_ASSIGN_OR_RETURN(const hpke::KemId kem, hpke::KemIdFor(recipient.key.algorithm()));
  QSAPI_ASSIGN_OR_RETURN(const hpke::AeadId aead, hpke::ParseAeadName(f.aead));
  if (aead == hpke::AeadId::kExportOnly) return InvalidArgument("--aead export-only cannot carry data");
  hpke::KdfId kdf = hpke::DefaultKdfFor(kem);
  if (!f.kdf.empty()) {
    QSAPI_ASSIGN_OR_RETURN(kdf, hpke::ParseKdfName(f.kdf));
  }
  hpke::SealOptions options;
  options.suite = {kem, kdf, aead};
  options.chunk_size = f.chunk_size;
  return SealFile(recipient, f.in, f.out, options, !f.no_progress);
}

Status RunOpen(const OpenFlags& f) {
  QSAPI_ASSIGN_OR_RETURN(std::unique_ptr<keystore::Keystore> opened, OpenStore(f.store));
  std::shared_ptr<keystore::Keystore> ks = std::move(opened);
  return OpenFileWith([&](ByteView key_id) { return LoadRecipientKey(ks, f.key, key_id); }, f.in, f.out, {},
                      !f.no_progress);
}

}  // namespace

void RegisterSealCommands(CLI::App& app) {
  auto seal_flags = std::make_shared<SealFlags>();
  CLI::App* seal = app.add_subcommand(
      "seal", "Seal a file or stream to a recipient's public key (HPKE, RFC 9180, with a post-quantum KEM)");
  seal->add_option("--to", seal_flags->to, "The recipient's public-key file (-----BEGIN QSAPI PUBLIC KEY-----)")
      ->required();
  seal->add_option("--in", seal_flags->in, "Input file, or - for standard input")->capture_default_str();
  seal->add_option("--out", seal_flags->out, "Output file (written atomically), or - for standard output")
      ->capture_default_str();
  seal->add_option("--aead", seal_flags->aead, "AES-256-GCM or ChaCha20-Poly1305")->capture_default_str();
  seal->add_option("--kdf", seal_flags->kdf,
                   "HKDF-SHA256 or HKDF-SHA384 (default: SHA-256 for X-Wing and ML-KEM-768, SHA-384 otherwise)");
  seal->add_option("--chunk-size", seal_flags->chunk_size, "Plaintext bytes per STREAM chunk (16 .. 1048576)")
      ->capture_default_str();
  seal->add_flag("--no-progress", seal_flags->no_progress, "Never show a progress bar");
  seal->callback([seal_flags] {
    if (Status s = RunSeal(*seal_flags); !s.ok()) Fail("seal", s.error());
  });

  auto open_flags = std::make_shared<OpenFlags>();
  CLI::App* open = app.add_subcommand("open", "Open a sealed file or stream with a private key from the keystore");
  open->add_option("--key", open_flags->key, "Name of the private key in the keystore")->required();
  open->add_option("--in", open_flags->in, "Sealed input file, or - for standard input")->capture_default_str();
  open->add_option("--out", open_flags->out,
                   "Output file (written atomically: nothing is left behind on failure), or - for standard output "
                   "(each chunk is written once authenticated; a later failure shows only in the exit status)")
      ->capture_default_str();
  open->add_flag("--no-progress", open_flags->no_progress, "Never show a progress bar");
  AddStoreFlags(open, open_flags->store);
  open->callback([open_flags] {
    if (Status s = RunOpen(*open_flags); !s.ok()) Fail("open", s.error());
  });
}

}  // namespace qsapi::cli
