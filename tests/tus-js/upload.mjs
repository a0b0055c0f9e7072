// Uploads a file with tus-js-client in small chunks, stops half way, then resumes it with a new
// Upload from the upload's URL, as a browser reloaded mid-upload would. Prints {"url", "stoppedAt"}.
// Usage: node upload.mjs <endpoint> <file> <bearer token> <chunk size in bytes> [protocol]
// (protocol: tus-v1, the default, or ietf-draft-05)
import { readFileSync } from "node:fs";
import { Upload } from "tus-js-client";

const [endpoint, path, token, chunkSize, protocol = "tus-v1"] = process.argv.slice(2);
const data = readFileSync(path);

function run(options, stopAt) {
  return new Promise((resolve, reject) => {
    const upload = new Upload(data, {
      chunkSize: Number(chunkSize),
      headers: { Authorization: `Bearer ${token}` },
      retryDelays: [],
      storeFingerprintForResuming: false,
      ...options,
      onChunkComplete: (_, accepted, total) => {
        if (stopAt !== undefined && accepted >= stopAt && accepted < total) {
          upload.abort().then(() => resolve({ upload, stoppedAt: accepted }), reject);
        }
      },
      onSuccess: () => resolve({ upload, stoppedAt: null }),
      onError: reject,
    });
    upload.start();
  });
}

const metadata = { filename: "tus-js.bin", filetype: "application/octet-stream" };
const first = await run({ endpoint, metadata, protocol }, Math.floor(data.length / 2));
if (first.stoppedAt === null) throw new Error("the first upload was not interrupted");
const resumed = await run({ uploadUrl: first.upload.url, protocol });
console.log(JSON.stringify({ url: resumed.upload.url, stoppedAt: first.stoppedAt }));
