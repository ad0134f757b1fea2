/// The styles shipped with Reel, written for video: each names how the camera moves, how the light falls and how
/// things in the frame move, because a video model given only a still-image look ("masterpiece, 8k") tends to
/// produce a frozen or flickering clip. Negative prompts name the video failures of that look (jitter, flicker,
/// morphing, a static frame) and leave out whatever the style itself wants (grain and flicker for `vintage-film`,
/// stepped motion for `stop-motion`).
enum BuiltInStyles {
    static let all: [Style] = [
        Style(
            name: "cinematic",
            prompt: "Cinematic shot: {prompt}. Anamorphic widescreen framing, shallow depth of field, motivated key "
                + "light with soft falloff and a gentle rim light, rich contrast, subtle film grain, slow deliberate "
                + "dolly-in, natural motion blur, color graded in teal and amber.",
            negativePrompt: "flat lighting, overexposed, amateur camera shake, jittery motion, flickering, cartoon, "
                + "illustration, oversaturated, low quality, watermark, subtitles",
            labelZH: "电影感"),
        Style(
            name: "product-turntable",
            prompt: "Product video: {prompt}, slowly rotating a full 360 degrees on a turntable at constant speed, "
                + "centered on a seamless pure white background, soft even studio lighting with a faint contact "
                + "shadow, locked-off camera, crisp edges, sharp focus throughout, clean commercial look.",
            negativePrompt: "colored background, cluttered backdrop, props, hands, people, camera movement, wobbling, "
                + "uneven rotation, product changing shape, deformed product, motion blur, flicker, text, watermark",
            labelZH: "白底产品旋转"),
        Style(
            name: "ink-wash",
            prompt: "Traditional Chinese ink-wash painting in motion: {prompt}. Flowing black ink brushstrokes on "
                + "textured rice paper, ink softly bleeding and spreading as things move, misty empty space, subtle "
                + "grey washes with a touch of vermilion, slow graceful motion, the camera panning gently as if "
                + "unrolling a scroll.",
            negativePrompt: "photorealistic, 3D render, saturated colors, hard digital edges, neon, oil painting, "
                + "cluttered composition, flicker, jitter, text, watermark",
            labelZH: "水墨画"),
        Style(
            name: "documentary",
            prompt: "Documentary footage: {prompt}. Observational handheld camera with a subtle natural sway, "
                + "available natural light, realistic colors, candid unposed moments, medium and close shots with "
                + "gentle focus pulls, authentic textures, fine 16mm-like grain.",
            negativePrompt: "staged, glossy advertising look, over-stylized, cartoon, CGI, heavy color grading, lens "
                + "flares, text overlays, subtitles, watermark, frozen frame, flicker",
            labelZH: "纪录片"),
        Style(
            name: "anime",
            prompt: "Anime-style animation: {prompt}. Clean cel shading with crisp line art, vibrant hand-painted "
                + "backgrounds, expressive character acting, dynamic camera pans, drifting clouds and soft light "
                + "rays, gentle bloom, fluid 2D animation.",
            negativePrompt: "photorealistic, live action, 3D render, blurry lines, distorted faces, extra limbs, "
                + "inconsistent character design, stiff motion, flicker, watermark, subtitles",
            labelZH: "日本动画"),
        Style(
            name: "macro",
            prompt: "Macro cinematography: {prompt}. Extreme close-up through a 100mm macro lens, razor-thin depth of "
                + "field, creamy bokeh, fine surface textures and tiny details, a slow focus pull, slow gliding "
                + "slider movement, soft diffused light with sparkling highlights.",
            negativePrompt: "wide shot, deep focus, cluttered, noisy, blurry subject, fast camera movement, shaky, "
                + "oversharpened, flicker, watermark, text",
            labelZH: "微距"),
        Style(
            name: "aerial",
            prompt: "Aerial drone footage: {prompt}. High bird's-eye view, a smooth steady forward glide with a slow "
                + "reveal, vast sense of scale, golden-hour sunlight with long shadows, atmospheric haze toward the "
                + "horizon, crisp landscape detail, stabilized gimbal motion.",
            negativePrompt: "ground-level view, handheld shake, jittery motion, tilted horizon, fisheye distortion, "
                + "propellers in frame, low resolution, oversaturated, flicker, watermark, text",
            labelZH: "无人机航拍"),
        Style(
            name: "stop-motion",
            prompt: "Stop-motion animation: {prompt}. Handcrafted miniature puppets and sets, tactile felt, wood and "
                + "fabric textures, charming slightly stepped movement with tiny imperfections from frame to frame, "
                + "warm practical lighting, shallow depth of field of a tabletop scene.",
            negativePrompt: "smooth CGI motion, photorealistic people, live action, heavy motion blur, glossy plastic "
                + "render, flat 2D, watermark, text",
            labelZH: "定格动画"),
        Style(
            name: "timelapse",
            prompt: "Timelapse: {prompt}. Locked-off tripod camera while time visibly races by, clouds streaming "
                + "across the sky, light shifting from day to dusk, streaks of moving lights, smooth continuous "
                + "progression, sharp still foreground.",
            negativePrompt: "real-time motion, slow motion, camera shake, handheld, flickering exposure, jump cuts, "
                + "frozen scene, blurry foreground, watermark, text",
            labelZH: "延时摄影"),
        Style(
            name: "slow-motion",
            prompt: "High-speed slow-motion footage: {prompt}. Every moment of the movement stretched out, droplets "
                + "and particles hanging in the air, crisp textures at the peak of the action, smooth continuous "
                + "motion, dramatic backlight catching every detail.",
            negativePrompt: "fast motion, timelapse, smeared motion blur, choppy frames, stutter, camera shake, noisy "
                + "low light, flicker, watermark, text",
            labelZH: "慢动作"),
        Style(
            name: "handheld-vlog",
            prompt: "Handheld vlog footage: {prompt}. Filmed on a smartphone at arm's length or walking along, natural "
                + "slight bounce, wide-angle lens, bright natural daylight, casual authentic moments, vivid "
                + "true-to-life colors, spontaneous energy.",
            negativePrompt: "tripod-locked, letterbox, studio lighting, staged, heavy film grain, cartoon, CGI, "
                + "distorted faces, warped hands, flicker, watermark, subtitles",
            labelZH: "手持Vlog"),
        Style(
            name: "noir",
            prompt: "Film noir scene: {prompt}. High-contrast black and white, hard low-key lighting, deep shadows "
                + "striped by venetian-blind light, drifting smoke and haze, wet surfaces reflecting lamplight, a "
                + "slow tracking shot, 1940s mood, moody silhouettes.",
            negativePrompt: "color, saturated, bright flat lighting, cheerful, modern look, cartoon, low contrast, "
                + "washed out, flicker, watermark, text",
            labelZH: "黑色电影"),
        Style(
            name: "watercolor",
            prompt: "Animated watercolor painting: {prompt}. Soft translucent washes of pigment blooming on textured "
                + "paper, wet-on-wet edges bleeding into each other, gentle pastel palette, visible paper grain, "
                + "slow dreamy motion, colors flowing and settling as the scene moves.",
            negativePrompt: "photorealistic, 3D render, hard outlines, vector look, neon, dark muddy colors, flicker, "
                + "jitter, watermark, text",
            labelZH: "水彩"),
        Style(
            name: "claymation",
            prompt: "Claymation: {prompt}. Characters and sets sculpted from plasticine, visible fingerprints and "
                + "tool marks, chunky rounded shapes, bright saturated colors, charming stepped stop-motion "
                + "movement, soft tabletop studio lighting, miniature depth of field.",
            negativePrompt: "photorealistic, live action, smooth CGI, 2D animation, glossy plastic, melting shapes, "
                + "deformed faces, flicker, watermark, text",
            labelZH: "黏土动画"),
        Style(
            name: "3d-render",
            prompt: "Stylized 3D animated film: {prompt}. Polished CG render with global illumination and soft "
                + "shadows, appealing expressive characters, subsurface-scattered skin, detailed materials, smooth "
                + "keyframed animation, a gentle camera orbit, warm cinematic lighting.",
            negativePrompt: "2D, flat, sketch, photograph, live action, low-poly, jagged edges, uncanny faces, stiff "
                + "animation, clipping, flicker, watermark, text",
            labelZH: "三维动画"),
        Style(
            name: "vintage-film",
            prompt: "Vintage 8mm home movie: {prompt}. Super 8 look with warm faded colors, heavy organic grain, "
                + "light leaks and the occasional frame flicker, soft vignette, gentle gate weave, blooming "
                + "highlights, nostalgic 1970s feel, handheld camera.",
            negativePrompt: "digital sharpness, modern, HDR, clean crisp image, high saturation, smooth gimbal, CGI, "
                + "watermark, subtitles",
            labelZH: "复古8毫米胶片"),
        Style(
            name: "cyberpunk-neon",
            prompt: "Cyberpunk neon night: {prompt}. Rain-soaked futuristic city glowing with magenta and cyan neon, "
                + "reflections rippling on wet pavement, volumetric haze and light beams, flickering holographic "
                + "billboards, a slow tracking camera, high-contrast moody lighting.",
            negativePrompt: "daylight, rustic, pastel, flat lighting, dull colors, low contrast, blurry, jittery "
                + "motion, readable text, watermark",
            labelZH: "赛博朋克霓虹"),
        Style(
            name: "nature-documentary",
            prompt: "Nature documentary footage: {prompt}. Long telephoto lens from a respectful distance, natural "
                + "behavior, soft morning light, rich natural colors, a patient steady tracking shot from a tripod, "
                + "shallow depth of field isolating the subject, immersive habitat detail.",
            negativePrompt: "zoo enclosure, cartoon, CGI animals, anthropomorphic, unnatural colors, shaky camera, "
                + "distorted anatomy, extra limbs, flicker, watermark, text",
            labelZH: "自然纪录片"),
        Style(
            name: "food-commercial",
            prompt: "Food commercial: {prompt}. Appetizing close-up hero shot, a slow-motion pour with steam rising, "
                + "glistening textures and fresh ingredients, warm backlight and a soft key light, shallow depth of "
                + "field, a slow push-in across a clean styled tabletop, rich saturated colors.",
            negativePrompt: "unappetizing, messy, dull colors, harsh flash, plastic-looking food, cold blue tint, "
                + "flicker, watermark, text, logos",
            labelZH: "美食广告"),
        Style(
            name: "fashion-runway",
            prompt: "Fashion runway show: {prompt}. Walking confidently toward the camera down a catwalk, fabric "
                + "flowing and swinging with each stride, bright runway spotlights against a darker audience, "
                + "camera flashes popping, a long-lens tracking shot, high-fashion editorial look.",
            negativePrompt: "awkward gait, distorted body, extra limbs, warped hands, deformed face, clothing "
                + "morphing, static pose, amateur lighting, flicker, watermark, text",
            labelZH: "时装走秀"),
        Style(
            name: "e-commerce-lifestyle",
            prompt: "E-commerce lifestyle video: {prompt}. The product in real everyday use in a bright modern home, "
                + "natural window light, relaxed friendly people, clean uncluttered styling, a smooth gimbal "
                + "tracking shot, fresh airy colors, premium advertising quality, the product clearly in focus.",
            negativePrompt: "dark, gloomy, cluttered, messy room, distorted product, warped hands, deformed faces, "
                + "low quality, flicker, watermark, text, price tags",
            labelZH: "电商生活场景"),
        Style(
            name: "classroom-explainer",
            prompt: "Educational explainer animation: {prompt}. Clear flat 2D motion graphics, simple shapes and "
                + "diagrams that build up step by step, smooth eased transitions, a friendly bright palette on a "
                + "clean light background, calm steady framing, easy for students to follow.",
            negativePrompt: "photorealistic, cluttered, dark, chaotic fast motion, garbled text, illegible labels, "
                + "distorted diagrams, flicker, jitter, watermark",
            labelZH: "课堂讲解动画"),
        Style(
            name: "pixel-art",
            prompt: "Pixel art animation: {prompt}. Retro 16-bit video game style, crisp square pixels, a limited "
                + "color palette, sprite animation in smooth looping cycles, parallax scrolling background layers, "
                + "side-on view, nostalgic arcade mood.",
            negativePrompt: "photorealistic, 3D render, smooth gradients, anti-aliased blur, painterly, noise, JPEG "
                + "artifacts, flicker, watermark",
            labelZH: "像素艺术"),
        Style(
            name: "underwater",
            prompt: "Underwater footage: {prompt}. Clear blue water with shimmering caustic light dancing across "
                + "every surface, sunbeams filtering down from the surface, drifting particles and rising bubbles, "
                + "slow weightless motion, a gently swimming camera, rich aquamarine tones.",
            negativePrompt: "dry land, murky brown water, overexposed, harsh shadows, fast motion, camera shake, "
                + "distorted fish, extra fins, flicker, watermark, text",
            labelZH: "水下摄影"),
        Style(
            name: "wuxia",
            prompt: "Wuxia film scene: {prompt}. Graceful martial-arts motion in ancient China, silk robes and long "
                + "hair streaming in the wind, weightless wire-work leaps, slow-motion sword arcs, a misty "
                + "landscape, soft diffused light, a sweeping crane shot, muted jade and ink tones.",
            negativePrompt: "modern clothing, guns, cars, cartoon, stiff motion, distorted limbs, warped weapons, "
                + "extra fingers, flicker, watermark, subtitles",
            labelZH: "武侠"),
        Style(
            name: "paper-cut",
            prompt: "Chinese paper-cut animation: {prompt}. Layered red paper cutouts with intricate hollowed "
                + "patterns, crisp cut edges and subtle paper texture, jointed figures moving like shadow puppets, "
                + "soft backlight glowing through the paper, flat stage-like depth, festive mood.",
            negativePrompt: "photorealistic, 3D render, smooth gradients, live action, blurry edges, messy, flicker, "
                + "watermark, text",
            labelZH: "剪纸动画"),
        Style(
            name: "music-video",
            prompt: "Music video: {prompt}. Bold stylized lighting with colored gels and strobing accents, rhythmic "
                + "camera moves, whip pans and slow orbits around the performer, haze catching light beams, high "
                + "energy, saturated contrasting colors, polished performance look.",
            negativePrompt: "static camera, dull flat lighting, amateur, distorted faces, warped hands, extra limbs, "
                + "muddy colors, watermark, subtitles, text",
            labelZH: "音乐MV"),
        Style(
            name: "interior-walkthrough",
            prompt: "Interior walkthrough video: {prompt}. A smooth gimbal glide through the space at walking pace, "
                + "wide-angle lens with straight vertical lines, bright balanced daylight from the windows, clean "
                + "tidy staging, warm inviting atmosphere, real-estate showcase quality.",
            negativePrompt: "fisheye distortion, tilted verticals, shaky camera, dark rooms, cluttered, warped "
                + "furniture, bending walls, flicker, watermark, text",
            labelZH: "室内漫游"),
    ]
}
