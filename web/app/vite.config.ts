import { defineConfig } from "vite";

// The output goes where `weir`'s build script says (WEIR_WEB_OUT), or to
// dist/ for a manual `npm run build`.
export default defineConfig({
  base: "/",
  build: {
    outDir: process.env.WEIR_WEB_OUT ?? "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
    sourcemap: false,
  },
});
