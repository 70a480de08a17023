import { defineConfig } from "vite";

// The editor is served by the gofastapi binary from web/dist (embedded).
// `npm run dev` proxies the API to a running `gofastapi dev` on :8080.
export default defineConfig({
  build: {
    outDir: "dist",
    // dist/README.txt is committed (it keeps go:embed compiling before the
    // first build); the build script removes the previous build itself.
    emptyOutDir: false,
    target: "es2022",
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: {
      "/gofastapi.v1.": {
        target: "http://localhost:8080",
        // The API answers browser calls only from its own origin: present
        // the dev server's calls as coming from there.
        configure: (proxy) => proxy.on("proxyReq", (req) => req.getHeader("origin") && req.setHeader("origin", "http://localhost:8080")),
      },
    },
  },
});
