# syntax=docker/dockerfile:1
# meshlet sidecar image: Node 24 runs the TypeScript sources directly (type stripping).

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; the node@24 devDependency is not needed on a Node 24 image.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY config ./config
USER node
# inbound, outbound, admin
EXPOSE 15006 15001 15000
ENTRYPOINT ["node", "bin/meshlet.js"]
CMD ["run", "--config", "config/meshlet.yaml"]
