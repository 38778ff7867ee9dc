// etcd_transport_bench: the same etcd operations the EtcdStore makes (a create as a Txn on create revision 0, a get
// as a Range of one key), once over etcd's gRPC API (grpc++ with the KV service generated from etcd's own .proto
// files, Debian's golang-etcd-server-dev) and once over its HTTP/JSON gateway with libcurl (what the store uses),
// at 1, 8 and 32 client threads. Reports operations/s, p99 latency, and CPU per operation on the client (this
// process: what a stratusd would spend) and, with --etcd-pid, in etcd (where the gateway translates JSON to gRPC).
//
// Usage: etcd_transport_bench --endpoint 127.0.0.1:2379 [--etcd-pid PID] [--duration S] [--clients 1,8,32]
//                             [--value-bytes N]
#include <curl/curl.h>
#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string B64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(n);
  return out;
}

std::string UnB64(const std::string& in) {
  std::string out(3 * in.size() / 4 + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) throw std::runtime_error("bad base64 from etcd");
  size_t pad = in.size() >= 2 ? (in[in.size() - 1] == '=') + (in[in.size() - 2] == '=') : 0;
  out.resize(n - pad);
  return out;
}

// One client's connection, either transport.
class Conn {
 public:
  virtual ~Conn() = default;
  virtual void Create(const std::string& key, const std::string& value) = 0;
  virtual std::string Get(const std::string& key) = 0;
};

class GrpcConn : public Conn {
 public:
  explicit GrpcConn(const std::string& endpoint) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // one HTTP/2 connection per client, as curl has
    stub_ = etcdserverpb::KV::NewStub(
        grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args));
  }
  void Create(const std::string& key, const std::string& value) override {
    etcdserverpb::TxnRequest req;
    auto* cmp = req.add_compare();
    cmp->set_key(key);
    cmp->set_target(etcdserverpb::Compare::CREATE);
    cmp->set_result(etcdserverpb::Compare::EQUAL);
    cmp->set_create_revision(0);
    auto* put = req.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(value);
    etcdserverpb::TxnResponse resp;
    grpc::ClientContext ctx;
    auto s = stub_->Txn(&ctx, req, &resp);
    if (!s.ok()) throw std::runtime_error("grpc txn: " + s.error_message());
    if (!resp.succeeded()) throw std::runtime_error("grpc txn: key exists: " + key);
  }
  std::string Get(const std::string& key) override {
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    etcdserverpb::RangeResponse resp;
    grpc::ClientContext ctx;
    auto s = stub_->Range(&ctx, req, &resp);
    if (!s.ok() || resp.kvs_size() != 1) throw std::runtime_error("grpc range: " + s.error_message());
    return resp.kvs(0).value();
  }

 private:
  std::unique_ptr<etcdserverpb::KV::Stub> stub_;
};

class GatewayConn : public Conn {
 public:
  explicit GatewayConn(const std::string& endpoint) : base_("http://" + endpoint) {
    curl_ = curl_easy_init();
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &GatewayConn::Write);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &body_);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  }
  ~GatewayConn() override {
    curl_slist_free_all(headers_);
    curl_easy_cleanup(curl_);
  }
  void Create(const std::string& key, const std::string& value) override {
    json req = {{"compare", {{{"key", B64(key)}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}}}},
                {"success", {{{"request_put", {{"key", B64(key)}, {"value", B64(value)}}}}}}};
    json resp = Post("/v3/kv/txn", req.dump());
    if (!resp.value("succeeded", false)) throw std::runtime_error("gateway txn: key exists: " + key);
  }
  std::string Get(const std::string& key) override {
    json resp = Post("/v3/kv/range", json{{"key", B64(key)}}.dump());
    if (!resp.contains("kvs") || resp["kvs"].size() != 1) throw std::runtime_error("gateway range: no value");
    return UnB64(resp["kvs"][0].value("value", ""));
  }

 private:
  static size_t Write(char* p, size_t s, size_t n, void* ud) {
    static_cast<std::string*>(ud)->append(p, s * n);
    return s * n;
  }
  json Post(const std::string& path, const std::string& body) {
    body_.clear();
    std::string url = base_ + path;
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    CURLcode rc = curl_easy_perform(curl_);
    long code = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200) throw std::runtime_error("gateway " + path + ": " + curl_easy_strerror(rc));
    return json::parse(body_);
  }
  std::string base_, body_;
  CURL* curl_;
  curl_slist* headers_;
};

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double PidCpuSeconds(int pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {  // fields 14 and 15 are utime and stime, in clock ticks
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

struct Result {
  double per_s = 0, p99_ms = 0, client_us = 0, etcd_us = 0;
};

// Runs `op(conn, thread, i)` on `clients` threads for `seconds`, each with its own connection.
template <typename Op>
Result Phase(const std::string& transport, const std::string& endpoint, int clients, double seconds, int etcd_pid,
             Op op) {
  std::vector<std::unique_ptr<Conn>> conns;
  for (int c = 0; c < clients; ++c) {
    if (transport == "grpc") conns.push_back(std::make_unique<GrpcConn>(endpoint));
    else conns.push_back(std::make_unique<GatewayConn>(endpoint));
  }
  // One warm-up operation per connection (connects), not counted.
  for (int c = 0; c < clients; ++c) op(*conns[c], c, -1);
  std::vector<std::vector<double>> lat(clients);
  std::atomic<bool> stop{false};
  double cpu0 = ProcessCpuSeconds(), etcd0 = PidCpuSeconds(etcd_pid);
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; !stop; ++i) {
        auto s = Clock::now();
        op(*conns[c], c, i);
        lat[c].push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu = ProcessCpuSeconds() - cpu0, etcd = PidCpuSeconds(etcd_pid) - etcd0;
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Result r;
  if (all.empty()) return r;
  r.per_s = all.size() / wall;
  r.p99_ms = all[std::min(all.size() - 1, static_cast<size_t>(all.size() * 0.99))];
  r.client_us = cpu * 1e6 / all.size();
  r.etcd_us = etcd * 1e6 / all.size();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint = "127.0.0.1:2379";
  int etcd_pid = 0;
  double duration = 3;
  size_t value_bytes = 900;  // about a stored Stratus KeyPair
  std::vector<int> clients = {1, 8, 32};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--endpoint") endpoint = next();
    else if (a == "--etcd-pid") etcd_pid = std::stoi(next());
    else if (a == "--duration") duration = std::stod(next());
    else if (a == "--value-bytes") value_bytes = std::stoul(next());
    else if (a == "--clients") {
      clients.clear();
      std::stringstream ss(next());
      for (std::string c; std::getline(ss, c, ',');) clients.push_back(std::stoi(c));
    } else {
      std::cerr << "usage: etcd_transport_bench --endpoint HOST:PORT [--etcd-pid PID] [--duration S] "
                   "[--clients 1,8,32] [--value-bytes N]\n";
      return 2;
    }
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::string value(value_bytes, 'x');
  std::string run = std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  std::cout << "| op | transport | clients | ops/s | p99 ms | client CPU us/op | etcd CPU us/op |\n"
            << "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const char* op : {"create", "get"}) {
    for (const char* transport : {"grpc", "gateway"}) {
      for (int n : clients) {
        std::string prefix = "/bench/" + run + "/" + transport + "/" + std::to_string(n) + "/";
        Result r;
        if (std::string(op) == "create") {
          r = Phase(transport, endpoint, n, duration, etcd_pid, [&](Conn& c, int t, int i) {
            c.Create(prefix + std::to_string(t) + "-" + std::to_string(i + 1), value);
          });
        } else {
          std::string key = prefix + "get";
          { GatewayConn(endpoint).Create(key, value); }
          r = Phase(transport, endpoint, n, duration, etcd_pid, [&](Conn& c, int, int) {
            if (c.Get(key).size() != value.size()) throw std::runtime_error("short value");
          });
        }
        char line[256];
        std::snprintf(line, sizeof line, "| %s | %s | %d | %.0f | %.2f | %.0f | %.0f |", op, transport, n, r.per_s,
                      r.p99_ms, r.client_us, r.etcd_us);
        std::cout << line << "\n" << std::flush;
      }
    }
  }
  curl_global_cleanup();
  return 0;
}
