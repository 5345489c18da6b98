// pybind11 module bedrock_deploy._engine, shaped like mochi.bedrock.server / client.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "catalogue.hpp"
#include "client.hpp"
#include "component.hpp"
#include "info.hpp"
#include "log.hpp"
#include "server.hpp"

namespace py = pybind11;
using namespace bedrock_engine;

namespace {

std::string config_to_text(const py::object& config) {
  if (config.is_none()) return "";
  if (py::isinstance<py::str>(config)) return config.cast<std::string>();
  return py::module_::import("json").attr("dumps")(config).cast<std::string>();
}

py::object json_to_py(const json& j) {
  return py::module_::import("json").attr("loads")(j.dump());
}

class PyServer {
 public:
  PyServer(const std::string& address, const py::object& config, int rank, int size,
           py::object allgather) {
    ServerOptions opts;
    opts.context.rank = rank;
    opts.context.size = size;
    opts.primary_on_own_thread = true;
    allgather_ = allgather;  // owned here: released with the GIL held, never by Server
    if (!allgather.is_none()) {
      const py::object* fn = &allgather_;
      opts.allgather = [fn](const std::string& mine) {
        py::gil_scoped_acquire gil;
        py::object r = (*fn)(mine);
        return r.cast<std::vector<std::string>>();
      };
    }
    std::string text = config_to_text(config);
    py::gil_scoped_release release;
    server_ = std::make_unique<Server>(address, text, std::move(opts));
  }
  ~PyServer() {
    if (server_) {
      py::gil_scoped_release release;
      server_.reset();
    }
  }
  std::string address() const { return check().address(); }
  py::object config() const { return json_to_py(check().config()); }
  std::vector<std::string> warnings() const { return check().warnings(); }
  void finalize() {
    if (!server_) return;
    py::gil_scoped_release release;
    server_->finalize();
  }
  void wait_for_finalize() {
    Server& s = check();
    for (;;) {
      bool done;
      {
        py::gil_scoped_release release;
        done = s.wait_for_finalize_for(100);
      }
      if (done) break;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
    finalize();
  }

 private:
  Server& check() const {
    if (!server_) throw std::runtime_error("server is finalized");
    return *server_;
  }
  py::object allgather_;
  std::unique_ptr<Server> server_;
};

py::dict response_dict(const Response& r) {
  py::dict d;
  d["os_thread_id"] = r.exec_tid;
  d["cpu"] = r.exec_cpu;
  return d;
}

}  // namespace

PYBIND11_MODULE(_engine, m) {
  m.doc() = "bedrock-engine: Bedrock-compatible engine (server, client) of bedrock-deploy";
  m.attr("__version__") = kEngineVersion;

  py::register_exception<ConfigError>(m, "ConfigError", PyExc_ValueError);
  py::register_exception<UnsupportedProtocol>(m, "UnsupportedProtocol", PyExc_RuntimeError);
  static py::exception<RpcError> rpc_error(m, "RpcError", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const RpcError& e) {
      py::set_error(rpc_error, e.what());
    }
  });

  m.def("set_log_level", [](const std::string& level) { set_log_level(parse_log_level(level)); });
  m.def("load_config",
        [](const py::object& config, int rank, int size) {
          std::vector<std::string> warnings;
          ConfigContext ctx{rank, size};
          json j = load_config(config_to_text(config), ctx, &warnings);
          return py::make_tuple(json_to_py(j), warnings);
        },
        py::arg("config"), py::arg("rank") = 0, py::arg("size") = 1,
        "Validates and expands a Bedrock config like the engine does (no server started). "
        "Returns (effective_config, warnings); raises ConfigError.");

  m.def("catalogue", [] { return json_to_py(catalogue_json()); },
        "The component catalogue (share/components.json) this engine was built with.");
  m.def("implemented_components",
        [] {
          std::vector<std::string> out;
          for (const auto& [type, factory] : component_factories()) out.push_back(type);
          return out;
        },
        "The provider types this engine implements.");

  py::class_<PyServer>(m, "Server")
      .def(py::init<const std::string&, const py::object&, int, int, py::object>(),
           py::arg("address"), py::arg("config") = py::none(), py::arg("rank") = 0,
           py::arg("size") = 1, py::arg("allgather") = py::none())
      .def_property_readonly("address", &PyServer::address)
      .def_property_readonly("config", &PyServer::config)
      .def_property_readonly("warnings", &PyServer::warnings)
      .def("finalize", &PyServer::finalize)
      .def("wait_for_finalize", &PyServer::wait_for_finalize);

  py::class_<Client>(m, "Client")
      .def(py::init<const std::string&>(), py::arg("protocol"))
      .def("set_spin_us",
           [](Client& c, long us) { c.options.spin = std::chrono::microseconds(us); })
      .def("set_timeout_ms",
           [](Client& c, long ms) { c.options.timeout = std::chrono::milliseconds(ms); })
      .def("query",
           [](Client& c, const std::string& a, int pid) {
             json j;
             {
               py::gil_scoped_release r;
               j = c.query(a, static_cast<uint16_t>(pid));
             }
             return json_to_py(j);
           },
           py::arg("address"), py::arg("provider_id") = 0)
      .def("shutdown",
           [](Client& c, const std::string& a, int pid) {
             py::gil_scoped_release r;
             c.shutdown(a, static_cast<uint16_t>(pid));
           },
           py::arg("address"), py::arg("provider_id") = 0)
      .def("ping",
           [](Client& c, const std::string& a, int pid) {
             Response r;
             {
               py::gil_scoped_release rel;
               r = c.ping(a, static_cast<uint16_t>(pid));
             }
             return response_dict(r);
           },
           py::arg("address"), py::arg("provider_id") = 0)
      .def("forward_ping",
           [](Client& c, const std::string& a, const std::string& target) {
             py::gil_scoped_release rel;
             return c.forward_ping(a, target);
           },
           py::arg("address"), py::arg("target"),
           "The engine at address pings target from inside a handler (a nested RPC). Returns "
           "(tid of the nested ping's handler, tid of the forwarding handler).")
      .def("ping_loop",
           [](Client& c, const std::string& a, int pid, int n) {
             std::vector<double> us;
             us.reserve(static_cast<size_t>(n));
             py::gil_scoped_release rel;
             for (int i = 0; i < n; ++i) {
               auto t0 = std::chrono::steady_clock::now();
               c.ping(a, static_cast<uint16_t>(pid));
               auto t1 = std::chrono::steady_clock::now();
               us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
             }
             return us;
           },
           py::arg("address"), py::arg("provider_id"), py::arg("count"),
           "Runs count sequential empty RPCs; returns each round trip in microseconds.")
      .def("put",
           [](Client& c, const std::string& a, int pid, const py::bytes& k, const py::bytes& v) {
             std::string ks = k, vs = v;
             py::gil_scoped_release r;
             c.put(a, static_cast<uint16_t>(pid), ks, vs);
           },
           py::arg("address"), py::arg("provider_id"), py::arg("key"), py::arg("value"))
      .def("get",
           [](Client& c, const std::string& a, int pid, const py::bytes& k) -> py::object {
             std::string ks = k;
             std::optional<std::string> v;
             {
               py::gil_scoped_release r;
               v = c.get(a, static_cast<uint16_t>(pid), ks);
             }
             if (!v) return py::none();
             return py::bytes(*v);
           },
           py::arg("address"), py::arg("provider_id"), py::arg("key"))
      .def("erase",
           [](Client& c, const std::string& a, int pid, const py::bytes& k) {
             std::string ks = k;
             py::gil_scoped_release r;
             return c.erase(a, static_cast<uint16_t>(pid), ks);
           },
           py::arg("address"), py::arg("provider_id"), py::arg("key"))
      .def("list",
           [](Client& c, const std::string& a, int pid, const py::bytes& prefix, uint32_t max) {
             std::string ps = prefix;
             std::vector<std::string> keys;
             {
               py::gil_scoped_release r;
               keys = c.list(a, static_cast<uint16_t>(pid), ps, max);
             }
             py::list out;
             for (auto& k : keys) out.append(py::bytes(k));
             return out;
           },
           py::arg("address"), py::arg("provider_id"), py::arg("prefix") = py::bytes(""),
           py::arg("max_keys") = 1000)
      .def("flock_view",
           [](Client& c, const std::string& a, int pid) {
             json j;
             {
               py::gil_scoped_release r;
               j = c.flock_view(a, static_cast<uint16_t>(pid));
             }
             return json_to_py(j);
           },
           py::arg("address"), py::arg("provider_id"))
      .def("abtio_pwrite",
           [](Client& c, const std::string& a, int pid, const std::string& path,
              const py::bytes& data, uint64_t offset) {
             std::string ds = data;
             py::gil_scoped_release r;
             return c.abtio_pwrite(a, static_cast<uint16_t>(pid), path, offset, ds);
           },
           py::arg("address"), py::arg("provider_id"), py::arg("path"), py::arg("data"),
           py::arg("offset") = 0)
      .def("abtio_pread",
           [](Client& c, const std::string& a, int pid, const std::string& path, uint64_t size,
              uint64_t offset) {
             std::string out;
             {
               py::gil_scoped_release r;
               out = c.abtio_pread(a, static_cast<uint16_t>(pid), path, offset, size);
             }
             return py::bytes(out);
           },
           py::arg("address"), py::arg("provider_id"), py::arg("path"), py::arg("size"),
           py::arg("offset") = 0)
      .def("send_raw",
           [](Client& c, const std::string& a, const py::bytes& data) {
             std::string ds = data;
             py::gil_scoped_release r;
             c.send_raw(a, ds);
           },
           py::arg("address"), py::arg("data"),
           "Test helper: writes raw bytes (possibly malformed frames) to the engine.")
      .def_property_readonly("last_handler",
                             [](const Client& c) { return response_dict(c.last); },
                             "os_thread_id / cpu of the handler of the last successful call");
}
