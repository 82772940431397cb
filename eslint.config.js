// One lint gate for the whole tree: typed strict rules catch floating promises and
// non-exhaustive switches; @stylistic keeps layout uniform.
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";
import stylistic from "@stylistic/eslint-plugin";

export default defineConfig(
  { ignores: ["dist/**", "node_modules/**", "src/transport/envoy/gen/**", "coverage/**", ".stryker-tmp/**", "reports/**", ".cache/**"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["*.js", "*.mjs", "bench/*.js", "scripts/*.mjs"] }, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@stylistic": stylistic },
    rules: {
      "@stylistic/indent": ["error", 2],
      "@stylistic/quotes": ["error", "double", { avoidEscape: true }],
      "@stylistic/semi": ["error", "always"],
      "@stylistic/comma-dangle": ["error", "always-multiline"],
      "@stylistic/eol-last": "error",
      "@stylistic/no-trailing-spaces": "error",
      "@typescript-eslint/switch-exhaustiveness-check": "error",
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true, allowBoolean: true }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    // The console's browser script: plain JavaScript served as is (no build step, no types).
    files: ["src/transport/console/static/*.js"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { sourceType: "script", globals: { document: "readonly" } },
  },
  {
    files: ["test/**/*.ts", "bench/**"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
    },
  },
);
