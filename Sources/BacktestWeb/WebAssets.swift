/// The page's files, embedded in the binary at build time by SwiftPM (`.embedInCode` in
/// Package.swift): Assets/index.html, Assets/dashboard.js and Assets/dashboard.css are edited as
/// ordinary files and need no build step; nothing is read from disk or fetched at run time.
enum WebAssets {
    static var indexHTML: [UInt8] { PackageResources.index_html }
    static var script: [UInt8] { PackageResources.dashboard_js }
    static var style: [UInt8] { PackageResources.dashboard_css }
}
