package org.elasticsearch.node;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.ClasspathPluginsService;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.transport.netty4.Netty4Plugin;
import org.elasticsearch.xpack.spice.BasicAuthPlugin;
import spice.es.SpicePlugin;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * One Elasticsearch node in one JVM, for the local stack: `java -cp <jars> org.elasticsearch.node.SpiceNode
 * <home>` reads <home>/config/elasticsearch.yml and serves until SIGTERM. The plugins come
 * from the class path (Netty's HTTP transport, SpicePlugin for analysis and `GET /`,
 * basic authentication in BasicAuthPlugin). It is in this package because Node(NodeConstruction) and
 * NodeServiceProvider, the seam the test framework uses, are package-private.
 */
public final class SpiceNode extends Node {
    static final List<Class<? extends Plugin>> PLUGINS = List.of(Netty4Plugin.class, SpicePlugin.class, BasicAuthPlugin.class);

    private SpiceNode(Environment environment) {
        super(NodeConstruction.prepareConstruction(
            environment,
            PluginsLoader.createPluginsLoader(Set.of(), Set.of(), Map.of(), false),
            new NodeServiceProvider() {
                @Override
                PluginsService newPluginService(Environment env, PluginsLoader loader) {
                    return new ClasspathPluginsService(env.settings(), env.configDir(), loader, PLUGINS);
                }
            },
            true));
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: SpiceNode <home> (with <home>/config/elasticsearch.yml)");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        LogConfigurator.registerErrorListener();
        Settings initial = Settings.builder().put("path.home", home.toString()).build();
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            initial, Map.of(), home.resolve("config"), () -> "spice-es");
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(environment.settings()));
        LogConfigurator.configureESLogging();
        LogConfigurator.configureWithoutConfig(environment.settings());
        SpiceNode node = new SpiceNode(environment);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.prepareForClose();
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "spice-es-shutdown"));
        node.start();
        System.out.println("spice-es: started");
        stopped.await();
    }
}
