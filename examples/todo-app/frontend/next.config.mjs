import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** @type {import('next').NextConfig} */
const nextConfig = {
  // .next/standalone/server.js plus only the node_modules it needs (seed section 1).
  output: "standalone",
  // This app is its own root, whatever lockfiles sit above it in the repository, so the
  // standalone tree has server.js at its top.
  outputFileTracingRoot: here,
  turbopack: { root: here },
  poweredByHeader: false,
  // No next/image here: skip the optimizer and leave sharp's ~19 MB of native
  // libraries out of the standalone tree (and so out of the image).
  images: { unoptimized: true },
  outputFileTracingExcludes: { "*": ["node_modules/sharp/**", "node_modules/@img/**"] },
};

export default nextConfig;
