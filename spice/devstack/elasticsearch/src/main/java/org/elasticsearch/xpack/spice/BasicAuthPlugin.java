package org.elasticsearch.xpack.spice;

import org.elasticsearch.common.settings.Setting;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.util.concurrent.ThreadContext;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.interceptor.RestServerActionPlugin;
import org.elasticsearch.rest.RestInterceptor;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.List;

/**
 * HTTP basic authentication for the stack's Elasticsearch node: the default distribution's
 * security is not on Maven Central, and a node that answers anyone on loopback would let any
 * local process read every tenant's documents. Every request must carry the user and
 * password of the file named by `spice.basic_auth.file` (one line, `user:password`),
 * compared in constant time; anything else is a 401.
 *
 * The package name is not decoration: Elasticsearch lets only plugins whose class is under
 * `org.elasticsearch.xpack.` install a REST interceptor (ActionModule.isInternalPlugin).
 */
public final class BasicAuthPlugin extends Plugin implements RestServerActionPlugin {
    static final Setting<String> BASIC_AUTH_FILE =
        Setting.simpleString("spice.basic_auth.file", Setting.Property.NodeScope);

    private final byte[] expected;

    public BasicAuthPlugin(Settings settings) {
        String file = BASIC_AUTH_FILE.get(settings);
        if (file.isEmpty()) {
            throw new IllegalArgumentException("spice.basic_auth.file is required: the node never runs open");
        }
        try {
            String credentials = Files.readString(Path.of(file), StandardCharsets.UTF_8).strip();
            this.expected = ("Basic " + Base64.getEncoder().encodeToString(
                credentials.getBytes(StandardCharsets.UTF_8))).getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
    }

    @Override
    public List<Setting<?>> getSettings() {
        return List.of(BASIC_AUTH_FILE);
    }

    @Override
    public RestInterceptor getRestHandlerInterceptor(ThreadContext threadContext) {
        return (request, channel, handler, listener) -> {
            String presented = request.header("Authorization");
            if (presented != null && MessageDigest.isEqual(presented.getBytes(StandardCharsets.UTF_8), expected)) {
                listener.onResponse(true);
                return;
            }
            RestResponse refused = new RestResponse(RestStatus.UNAUTHORIZED, "application/json",
                "{\"error\":{\"type\":\"security_exception\",\"reason\":\"missing or wrong credentials "
                    + "(HTTP basic authentication)\"},\"status\":401}");
            refused.addHeader("WWW-Authenticate", "Basic realm=\"spice\", charset=\"UTF-8\"");
            channel.sendResponse(refused);
            listener.onResponse(false);
        };
    }
}
